using MailOps.Core.Hosting;

namespace MailOps.Tests.Cli;

/// <summary>
/// Mail handed in by other processes must never sit in a served queue: bursts of `mailops submit`
/// and `sendmail -t -i` (each its own process, as PHP's mail() and cron make them) are delivered
/// into the Maildir within seconds of each submission, every time.
/// </summary>
public sealed class SubmitBurstTests
{
    private const int Bursts = 50, PerBurst = 10;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Bursts_of_submissions_from_separate_processes_are_all_delivered_within_seconds()
    {
        using var temp = new TempQueue();
        string maildir = Path.Combine(temp.Root, "maildir");
        await using var server = MailServer.Start(LocalServer.Config(temp.QueuePath, maildir, "alice@self.test"));
        string box = Path.Combine(maildir, "self.test", "alice", "new");
        int Delivered() => Directory.Exists(box) ? Directory.GetFiles(box).Length : 0;
        var env = new Dictionary<string, string?> { ["MAILOPS_QUEUE"] = temp.QueuePath };
        var late = new List<string>();
        var started = DateTime.UtcNow;

        for (int burst = 0; burst < Bursts && DateTime.UtcNow - started < TimeSpan.FromMinutes(6); burst++)
        {
            var runs = Enumerable.Range(0, PerBurst).Select(i =>
            {
                string subject = $"burst {burst} message {i}";
                return i % 2 == 0
                    ? Programs.RunAsync(Programs.Mailops, ["submit", "-f", "app@self.test", "alice@self.test"], $"Subject: {subject}\n\nhello\n", env)
                    : Programs.RunAsync(Programs.Mailops, ["sendmail", "-t", "-i"], $"To: alice@self.test\nSubject: {subject}\n\nhello\n", env);
            }).ToArray();
            foreach (var result in await Task.WhenAll(runs)) Assert.True(result.ExitCode == 0, result.ToString());
            var submitted = DateTime.UtcNow;
            int expected = (burst + 1) * PerBurst;
            while (Delivered() < expected && DateTime.UtcNow - submitted < Bound) await Task.Delay(20);
            if (Delivered() < expected)
            {
                var waiting = server.Queued;
                late.Add($"burst {burst}: {expected - Delivered()} not delivered {Bound.TotalSeconds} s after submission ({waiting} queued)");
                // Let the rest catch up before the next burst, so one failure is counted once.
                while (Delivered() < expected && DateTime.UtcNow - submitted < TimeSpan.FromSeconds(30)) await Task.Delay(50);
            }
        }
        Assert.Empty(late);
        Assert.Equal(Bursts * PerBurst, Delivered());
    }
}
