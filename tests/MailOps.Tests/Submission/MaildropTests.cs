using System.Text;
using MailOps.Core.Config;
using MailOps.Core.Hosting;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.Tests.Submission;

/// <summary>
/// The maildrop and its pickup: every drop is untrusted input. A good one is queued with the
/// submitting user named; a bad one is moved aside with its reason, and nothing else is lost.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class MaildropTests : IDisposable
{
    private readonly TempQueue _q = new();
    private readonly QueueStore _store;
    private readonly MemoryLog _log = new();
    private readonly MailOpsConfig _config = new() { HostName = "mx.drop.test", MaxMessageSize = 64 * 1024 };

    public MaildropTests()
    {
        _store = _q.Open();
        Directory.CreateDirectory(Maildrop);
    }

    private string Maildrop => Path.Combine(_q.QueuePath, DropFile.DirectoryName);
    private string Rejected => Path.Combine(_q.QueuePath, "maildrop-rejected");

    private MaildropPickup Pickup() => new(_config, _store, _log);

    private string Plant(byte[] content, string? name = null)
    {
        name ??= DropFile.NewName(DateTimeOffset.UtcNow);
        File.WriteAllBytes(Path.Combine(Maildrop, name), content);
        return name;
    }

    private static byte[] Drop(string message, params string[] args)
    {
        var body = Encoding.UTF8.GetBytes(message);
        return [.. DropFile.Header(DropFile.SendmailMode, args), .. body, .. DropFile.Trailer(body.Length)];
    }

    private string ReasonFor(string name) => File.ReadAllText(Path.Combine(Rejected, name + ".reason"));

    [Fact]
    public async Task A_good_drop_is_queued_with_the_user_named_and_removed()
    {
        if (!OperatingSystem.IsLinux()) return;
        string name = Plant(Drop("Subject: hi\n\nhello\n", "-i", "bob@example.org"));
        Assert.Equal(PickupOutcome.Queued, await Pickup().PickUpAsync(name));

        Assert.False(File.Exists(Path.Combine(Maildrop, name)));
        var queued = Assert.Single(_store.List());
        Assert.Equal("bob@example.org", queued.Recipients);
        string user = Environment.UserName;
        Assert.Equal($"{user}@mx.drop.test", queued.Sender);
        using var body = new StreamReader(_store.OpenBody(queued.Id));
        string text = body.ReadToEnd();
        Assert.Contains($"(MailOps, from userid {user})", text);
        Assert.Contains("\r\nhello\r\n", text);
        Assert.Contains(_log.Lines, l => l.Message.Contains($"{name} from uid") && l.Message.Contains(queued.Id));
    }

    [Fact]
    public async Task Hostile_drops_are_each_refused_with_a_reason_and_the_good_one_between_them_is_queued()
    {
        if (!OperatingSystem.IsLinux()) return;
        var full = Drop("Subject: cut\n\nthis drop loses its end\n", "-i", "a@example.org");
        string truncated = Plant(full[..^10]);
        string empty = Plant([]);
        // A forged drop far bigger than MaxMessageSize: refused by its size, before anything is read.
        string huge = DropFile.NewName(DateTimeOffset.UtcNow);
        using (var f = File.Create(Path.Combine(Maildrop, huge))) f.SetLength(_config.MaxMessageSize * 4);
        string secret = Path.Combine(_q.Root, "secret.txt");
        File.WriteAllText(secret, "not for mail\n");
        string link = DropFile.NewName(DateTimeOffset.UtcNow);
        File.CreateSymbolicLink(Path.Combine(Maildrop, link), secret);
        // PHP-style header injection: a bare CR in Subject: smuggles a Bcc: past a CRLF splitter.
        string injected = Plant(Drop("To: a@example.org\nSubject: hi\rBcc: victim@example.net\n\nbody\n", "-t", "-i"));
        string badArgs = Plant(Drop("Subject: x\n\ny\n", "-bs"));
        string lying = Plant([.. Drop("Subject: x\n\ny\n", "-i", "a@example.org")[..^DropFile.TrailerLength], .. DropFile.Trailer(3)]);
        string good = Plant(Drop("Subject: fine\n\nfine\n", "-i", "a@example.org"));

        Assert.Equal(1, await Pickup().PickUpAllAsync());

        Assert.Equal("fine", Assert.Single(_store.List()).Subject);
        Assert.Contains("truncated", ReasonFor(truncated));
        Assert.Contains("too short", ReasonFor(empty));
        Assert.Contains("over MaxMessageSize", ReasonFor(huge));
        Assert.Contains("symbolic link", ReasonFor(link));
        Assert.Contains("bare CR", ReasonFor(injected));
        Assert.Contains("-bs", ReasonFor(badArgs));
        Assert.Contains("truncated", ReasonFor(lying));
        Assert.Equal("not for mail\n", File.ReadAllText(secret)); // the link moved as itself; its target is untouched
        Assert.True(new FileInfo(Path.Combine(Rejected, link)).LinkTarget is not null);
        Assert.Empty(Directory.GetFileSystemEntries(Maildrop)); // every drop is accounted for
        Assert.Equal(7, _log.Lines.Count(l => l.Message.Contains("maildrop: refused")));
        Assert.False(File.Exists(Path.Combine(Maildrop, good)));
    }

    [Fact]
    public async Task An_unfinished_drop_is_left_to_its_writer_and_a_foreign_name_is_refused()
    {
        if (!OperatingSystem.IsLinux()) return;
        string writing = "." + DropFile.NewName(DateTimeOffset.UtcNow);
        Plant(Encoding.ASCII.GetBytes("MAILOPS-DROP/1\0sendmail\0"), writing);
        string foreign = Plant(Drop("Subject: x\n\ny\n", "-i", "a@example.org"), "evil.eml");

        Assert.Equal(0, await Pickup().PickUpAllAsync());
        Assert.True(File.Exists(Path.Combine(Maildrop, writing)));
        Assert.Contains("not a name", ReasonFor(foreign));
        Assert.Empty(_store.List());
    }

    [Fact]
    public async Task The_helper_hands_in_mail_the_server_picks_up_at_start_and_on_the_trigger()
    {
        if (!OperatingSystem.IsLinux()) return;
        var env = new Dictionary<string, string?> { ["MAILOPS_QUEUE"] = _q.QueuePath };
        // No server yet: the drop waits in the maildrop.
        var before = await Programs.RunAsync(Programs.DropHelper, ["-i", "early@example.org"], "Subject: early\n\nwhile no server ran\n", env);
        Assert.True(before.ExitCode == 0, before.ToString());
        Assert.Single(Directory.GetFiles(Maildrop));

        _store.Dispose();
        var config = new MailOpsConfig { HostName = "mx.drop.test", QueuePath = _q.QueuePath, Listen = ["127.0.0.1:0"], Tls = new TlsSettings { Enabled = false }, MaxMessageSize = 64 * 1024 };
        await using var server = MailServer.Start(config, new MailServerOptions { Delivery = false });
        using var store = QueueStore.Open(_q.QueuePath);
        await WaitFor(() => store.List().Any(m => m.Subject == "early"), "the drop made before the start");

        // Without -i a lone dot ends the input, as sendmail's callers expect.
        var after = await Programs.RunAsync(Programs.DropHelper, ["late@example.org"], "Subject: late\n\nbody\n.\nnot part of it\n", env);
        Assert.True(after.ExitCode == 0, after.ToString());
        await WaitFor(() => store.List().Any(m => m.Subject == "late"), "the drop made while serving");
        var late = store.List().Single(m => m.Subject == "late");
        using var body = new StreamReader(store.OpenBody(late.Id));
        Assert.DoesNotContain("not part of it", body.ReadToEnd());

        // The server published its limit: a drop it would refuse is not even written.
        var huge = await Programs.RunAsync(Programs.DropHelper, ["-i", "big@example.org"], "Subject: big\n\n" + new string('x', 300 * 1024) + "\n", env);
        Assert.Equal(65, huge.ExitCode);
        Assert.Contains("larger than this system takes", huge.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(Maildrop));

        var usage = await Programs.RunAsync(Programs.DropHelper, ["-i"], "Subject: x\n\ny\n", env);
        Assert.Equal(64, usage.ExitCode);
        Assert.Contains("No recipients", usage.Stderr);
    }

    private static async Task WaitFor(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("not picked up within 5 s: " + what);
            await Task.Delay(20);
        }
    }

    public void Dispose()
    {
        _store.Dispose();
        _q.Dispose();
    }
}
