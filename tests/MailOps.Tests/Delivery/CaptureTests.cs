using System.Text.RegularExpressions;
using MailKit.Net.Smtp;
using MailOps.Core.Local;
using MimeKit;

namespace MailOps.Tests.Delivery;

/// <summary>A capturing test server (docs/testing.md): any recipient from loopback, kept once per message, nothing relayed.</summary>
public class CaptureTests
{
    [Fact]
    public async Task Serve_capture_keeps_one_copy_per_message_for_every_recipient_in_a_queue_of_its_own_and_relays_nothing()
    {
        var serve = await ServeProcess.StartAsync("--capture", "--listen", "127.0.0.1:0", "--no-tls");
        string queue = Regex.Match(serve.Log, @"queue (/[^\s,:]*mailops-capture-[^\s,:]+)").Groups[1].Value;
        Assert.True(Directory.Exists(queue), serve.Log);
        try
        {
            var message = new MimeMessage();
            message.From.Add(MailboxAddress.Parse("app@app.test"));
            message.To.Add(MailboxAddress.Parse("a@one.test"));
            message.Cc.Add(MailboxAddress.Parse("b@two.test"));
            message.Subject = "three domains";
            var body = new BodyBuilder { TextBody = "hello" };
            byte[] pdf = Enumerable.Range(0, 5000).Select(i => (byte)(i * 7)).ToArray();
            body.Attachments.Add("invoice.pdf", pdf, ContentType.Parse("application/pdf"));
            message.Body = body.ToMessageBody();
            using (var client = new SmtpClient())
            {
                await client.ConnectAsync("127.0.0.1", serve.Port, MailKit.Security.SecureSocketOptions.None);
                await client.SendAsync(message, MailboxAddress.Parse("bounce@app.test"),
                    [MailboxAddress.Parse("a@one.test"), MailboxAddress.Parse("b@two.test"), MailboxAddress.Parse("c@three.test")]);
                await client.DisconnectAsync(true);
            }

            MailboxMessage? kept = null;
            for (int i = 0; i < 200 && kept is null; i++)
            {
                kept = Mailboxes.Read(queue, null, new MailboxQuery()).SingleOrDefault();
                if (kept is null) await Task.Delay(50);
            }
            Assert.NotNull(kept);
            Assert.Equal("bounce@app.test", kept.Sender);
            Assert.Equal(["a@one.test", "b@two.test", "c@three.test"], kept.Recipients);
            Assert.Equal("three domains", kept.Subject);
            Assert.Equal(pdf, Assert.Single(kept.Attachments).Content);
            // Three destinations, one copy; the queue is empty, so nothing waits to be relayed.
            Assert.Single(Directory.GetFiles(CaptureStore.DirectoryOf(queue), "*.eml"));
            for (int i = 0; i < 100 && Directory.GetFiles(Path.Combine(queue, "env")).Length > 0; i++) await Task.Delay(50);
            Assert.Empty(Directory.GetFiles(Path.Combine(queue, "env")));
            var delivered = MailOps.Core.Queue.MailLog.Search(queue, new MailOps.Core.Queue.MailLogQuery { Events = [MailOps.Core.Queue.JournalEventType.Delivered] }).ToList();
            Assert.Equal(["a@one.test", "b@two.test", "c@three.test"], delivered.Select(e => e.Recipient).Order());
            Assert.All(delivered, e => Assert.Contains("captured", e.Detail));

            // Selecting and removing.
            Assert.Single(Mailboxes.Read(queue, null, new MailboxQuery { Address = "C@THREE.*" }));
            Assert.Empty(Mailboxes.Read(queue, null, new MailboxQuery { Subject = "other*" }));
            Assert.True(Mailboxes.Remove(kept));
            Assert.Empty(Mailboxes.Read(queue, null, new MailboxQuery()));
            Assert.Empty(Directory.GetFiles(CaptureStore.DirectoryOf(queue)));
        }
        finally
        {
            await serve.DisposeAsync();
            try { Directory.Delete(queue, recursive: true); } catch (IOException) { }
        }
    }
}
