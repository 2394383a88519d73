using MailOps.Core.Queue;

namespace MailOps.Tests.Queue;

/// <summary>The queue's shape by destination and age (Get-MailQueue -Summary, mailops queue --shape), Postfix's qshape.</summary>
public class QueueShapeTests
{
    [Fact]
    public async Task Recipients_are_counted_per_domain_in_qshape_age_buckets_and_printed_with_a_total()
    {
        using var queue = new TempQueue();
        using (var store = queue.Open())
        {
            var now = DateTimeOffset.UtcNow;
            async Task Enqueue(TimeSpan age, params string[] recipients)
            {
                var envelope = QueueStoreTests.NewEnvelope(recipients);
                envelope.Arrived = now - age;
                await store.EnqueueAsync(envelope, new MemoryStream(QueueStoreTests.SampleBody));
            }
            await Enqueue(TimeSpan.FromMinutes(1), "a@slow.example", "b@slow.example"); // 2 in 0-5
            await Enqueue(TimeSpan.FromMinutes(7), "c@slow.example");                    // 5-10
            await Enqueue(TimeSpan.FromMinutes(30), "d@slow.example", "e@other.example"); // 20-40, each domain
            await Enqueue(TimeSpan.FromDays(2), "f@other.example");                      // older than 1280 minutes

            var shape = QueueDomainSummary.ByDomain(store.List());
            var slow = shape.Single(d => d.Domain == "slow.example");
            Assert.Equal([2, 1, 0, 1, 0, 0, 0, 0, 0, 0], slow.Ages);
            var other = shape.Single(d => d.Domain == "other.example");
            Assert.Equal([0, 0, 0, 1, 0, 0, 0, 0, 0, 1], other.Ages);
            Assert.Equal(slow.Recipients, slow.Ages.Sum());
        }

        var printed = await Programs.MailopsAsync(null, "queue", "--shape", "--queue", queue.QueuePath);
        Assert.True(printed.ExitCode == 0, printed.ToString());
        var lines = printed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.Equal(["T", "5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"], lines[0]);
        Assert.Equal(["TOTAL", "6", "2", "1", "0", "2", "0", "0", "0", "0", "0", "1"], lines[1]);
        Assert.Equal(["slow.example", "4", "2", "1", "0", "1", "0", "0", "0", "0", "0", "0"], lines[2]);
        Assert.Equal(["other.example", "2", "0", "0", "0", "1", "0", "0", "0", "0", "0", "1"], lines[3]);
    }
}
