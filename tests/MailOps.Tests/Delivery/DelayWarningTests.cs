using System.Text;
using MailOps.Core.Queue;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>Delay warnings (RFC 3464 Action: delayed): once per message after DelayWarningAfter, read back with Python's email package.</summary>
public sealed class DelayWarningTests
{
    private const string Parse = """
        import email, sys
        m = email.message_from_binary_file(open(sys.argv[1], 'rb'))
        print('type', m.get_content_type(), m.get_param('report-type'))
        print('subject', m['Subject'])
        for part in m.walk():
            if part.get_content_type() == 'message/delivery-status':
                for block in part.get_payload():
                    for key in ('Final-Recipient', 'Action', 'Status', 'Will-Retry-Until'):
                        if block.get(key): print(key, block.get(key))
            if part.get_content_type() == 'text/rfc822-headers':
                print('returned headers only')
        """;

    private static async Task<string> EnqueueAsync(QueueStore store, string sender, DsnNotify notify, string domain)
    {
        var envelope = new Envelope
        {
            Arrived = DateTimeOffset.UtcNow,
            Sender = sender,
            Recipients = [new EnvelopeRecipient { Address = "u@" + domain, Notify = notify }],
            Origin = MessageOrigin.Submit,
        };
        return await store.EnqueueAsync(envelope, new MemoryStream("Subject: slow\r\nMessage-ID: <slow@sender.test>\r\n\r\nhello\r\n"u8.ToArray()));
    }

    [PeerFact("dnsmasq", "python3")]
    public async Task A_delayed_message_warns_its_sender_once_and_NOTIFY_NEVER_or_a_bounce_never()
    {
        await using var net = new MailNetwork();
        // Three domains (three destinations, each tried in every pass) on one busy MX.
        await net.StartDnsAsync("--mx-host=slow1.test,mx.slow.test,10", "--mx-host=slow2.test,mx.slow.test,10", "--mx-host=slow3.test,mx.slow.test,10",
            "--host-record=mx.slow.test,127.0.0.2");
        await using var busy = net.StartGreeter("127.0.0.2", "421 4.3.2 mx.slow.test busy, come back later");
        // Ten seconds: the first pass (three destinations, DNS, three refused connections) must end
        // before it, also on a loaded CI machine running other tests at the same time.
        var config = net.SenderConfig(c => c.DelayWarningAfter = TimeSpan.FromSeconds(10));
        var store = net.OpenSenderStore();
        string[] ids =
        [
            await EnqueueAsync(store, "s@sender.test", DsnNotify.Default, "slow1.test"),
            await EnqueueAsync(store, "t@sender.test", DsnNotify.Never, "slow2.test"),
            await EnqueueAsync(store, "", DsnNotify.Default, "slow3.test"), // a bounce is never reported on
        ];
        var arrived = store.ReadEnvelope(ids[0])!.Arrived;
        await MailNetwork.PassAsync(config, store, ids); // too early: deferred, no warning
        Assert.Equal(3, store.List().Count);
        var wait = arrived + TimeSpan.FromSeconds(10.3) - DateTimeOffset.UtcNow;
        if (wait > TimeSpan.Zero) await Task.Delay(wait);
        await MailNetwork.PassAsync(config, store, ids); // past DelayWarningAfter: one warning
        await Task.Delay(TimeSpan.FromSeconds(1.2)); // the next retry is due
        await MailNetwork.PassAsync(config, store, ids); // and no second warning
        Assert.True(busy.Connections >= 9, $"{busy.Connections} connections"); // each message in each pass
        var others = store.List().Where(m => !ids.Contains(m.Id)).ToList();
        Assert.True(others.Count == 1, string.Join("\n", store.ReadJournal(ids[0]).Select(e => $"{e.Time:HH:mm:ss.fff} {e.Event} {e.Status} {e.Detail}")) + $"\narrived {store.ReadEnvelope(ids[0])!.Arrived:HH:mm:ss.fff}");
        var report = others[0];
        var envelope = store.ReadEnvelope(report.Id)!;
        Assert.Equal("", envelope.Sender);
        Assert.Equal("s@sender.test", envelope.Recipients.Single().Address);
        Assert.True(store.ReadEnvelope(ids[0])!.DelayWarned);
        Assert.Contains(store.ReadJournal(ids[0]), e => e.Detail?.Contains($"delay warning for 1 recipient(s) queued as {report.Id}") == true);

        string path = Path.Combine(net.Sender.Root, "warning.eml");
        await using (var body = store.OpenBody(report.Id))
        await using (var file = File.Create(path))
            await body.CopyToAsync(file);
        var parsed = await Programs.RunAsync("/usr/bin/python3", ["-c", Parse, path]);
        Assert.True(parsed.ExitCode == 0, parsed.ToString());
        var lines = parsed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("type multipart/report delivery-status", lines);
        Assert.Contains("subject Delayed Mail (still being retried)", lines);
        Assert.Contains("Final-Recipient rfc822; u@slow1.test", lines);
        Assert.Contains("Action delayed", lines);
        Assert.Contains(lines, l => l.StartsWith("Status 4.", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("Will-Retry-Until ", StringComparison.Ordinal));
        Assert.Contains("returned headers only", lines);
    }
}
