using MailKit.Net.Smtp;
using MailOps.Core.Hosting;
using MailOps.Core.Queue;
using MimeKit;

namespace MailOps.Tests.Delivery;

/// <summary>
/// A server plans the messages its own process commits from the envelope in hand, without
/// scanning env/ (a scan stats every envelope: a listener taking mail would otherwise have a long
/// queue scanned back to back); what another process commits still reaches it through the trigger.
/// </summary>
public class OwnCommitTests
{
    [Fact]
    public async Task Mail_the_server_receives_is_delivered_without_a_scan_and_mail_queued_elsewhere_after_one()
    {
        using var q = new TempQueue();
        string maildir = Path.Combine(q.Root, "maildir");
        string box = Path.Combine(maildir, "self.test", "alice", "new");
        int Delivered() => Directory.Exists(box) ? Directory.GetFiles(box).Length : 0;
        async Task WaitFor(Func<bool> done, string what)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (!done() && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.True(done(), what);
        }

        await using var server = MailServer.Start(LocalServer.Config(q.QueuePath, maildir, "alice@self.test"));
        await WaitFor(() => server.Scheduler.Scans >= 1, "the server never scanned its queue at start");
        await Task.Delay(300); // anything the start-up woke has settled
        long scans = server.Scheduler.Scans;

        const int Count = 25;
        using (var client = new SmtpClient { LocalDomain = "client.self.test" })
        {
            await client.ConnectAsync(server.Endpoints[0].Address.ToString(), server.Endpoints[0].Port, MailKit.Security.SecureSocketOptions.None);
            for (int i = 0; i < Count; i++)
            {
                var message = new MimeMessage();
                message.From.Add(MailboxAddress.Parse("bob@example.org"));
                message.To.Add(MailboxAddress.Parse("alice@self.test"));
                message.Subject = $"own {i}";
                message.Body = new TextPart("plain") { Text = "hello" };
                await client.SendAsync(message);
            }
            await client.DisconnectAsync(true);
        }
        await WaitFor(() => Delivered() == Count, $"{Delivered()} of {Count} received messages were delivered");
        Assert.Equal(scans, server.Scheduler.Scans);

        // Another process's commit pulls the trigger: that one is found by a scan.
        using (var other = q.Open())
            await other.EnqueueAsync(MailOps.Tests.Queue.QueueStoreTests.NewEnvelope("alice@self.test"), new MemoryStream(MailOps.Tests.Queue.QueueStoreTests.SampleBody));
        await WaitFor(() => Delivered() == Count + 1, "the message queued by another process was not delivered");
        Assert.True(server.Scheduler.Scans > scans, "a message from another process was delivered without a scan");
        await WaitFor(() => q.Files("env").Length == 0, "the queue did not empty");
    }
}
