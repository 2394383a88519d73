using System.Diagnostics;
using System.Text;
using MailOps.Core.Config;
using MailOps.Core.Dkim;
using MailOps.Core.Queue;
using MailOps.Core.Submission;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// Mail from MailOps at a receiver as strict as the big providers, built from Debian's packages
/// (tests/peers/strict-receiver.sh): Postfix asks rspamd, as a milter, about every message, and
/// rspamd checks SPF, DKIM and DMARC against dnsmasq and refuses what DMARC p=reject refuses. The
/// sending domain publishes SPF for 127.0.0.1, a DKIM key and p=reject.
/// </summary>
public sealed class StrictReceiverTests
{
    [PeerFact("rspamd", "postfix", "dnsmasq")]
    public async Task Signed_mail_passes_SPF_DKIM_and_DMARC_and_the_same_mail_unsigned_from_elsewhere_is_refused()
    {
        await using var net = new MailNetwork();
        var key = new DkimKeys(net.Sender.QueuePath).Generate("dmarc.test", "s1");
        await net.StartDnsAsync(
            "--txt-record=dmarc.test,v=spf1 ip4:127.0.0.1 -all",
            "--txt-record=_dmarc.dmarc.test,v=DMARC1; p=reject; adkim=r; aspf=r",
            $"--txt-record={key.RecordName}," + string.Join(",", key.TxtRecord.Chunk(255).Select(c => new string(c))),
            "--mx-host=dmarc.test,mx.dmarc.test,10", "--host-record=mx.dmarc.test,127.0.0.5", "--host-record=out.dmarc.test,127.0.0.1");
        var inbox = await net.StartReceiverAsync("127.0.0.2");
        using var receiver = await StartAsync(net, "127.0.0.6", "127.0.0.2");

        MailOpsConfig From(string source) => net.SenderConfig(c =>
        {
            c.HostName = "out.dmarc.test";
            c.Routes = new(StringComparer.OrdinalIgnoreCase) { ["far.test"] = new TransportSettings { Host = $"127.0.0.6:{net.Port}", SourceAddress = source } };
        });
        const string message = "From: Alice <alice@dmarc.test>\nTo: bob@far.test\nSubject: quarterly report\nList-Unsubscribe: <mailto:unsub@dmarc.test>\n\nThe numbers are in.\n";
        var request = new SubmissionRequest { HostName = "out.dmarc.test", DefaultDomain = "dmarc.test", Sender = "alice@dmarc.test", Recipients = ["bob@far.test"] };

        // Signed, from the address SPF names: everything passes.
        var signedStore = net.OpenSenderStore();
        string signedId = await MessageSubmitter.SubmitAsync(signedStore, new MemoryStream(Encoding.UTF8.GetBytes(message)), request);
        await MailNetwork.PassAsync(From("127.0.0.1"), signedStore, [signedId]);
        var first = await ArrivedAsync(inbox, 1, receiver);
        Has(@"(?i)dkim=pass[^;]*header\.d=dmarc\.test", first, receiver);
        Has(@"(?i)spf=pass", first, receiver);
        Has(@"(?i)dmarc=pass", first, receiver);

        // Signed, from an address SPF does not name (a forwarder's path): DKIM alone carries DMARC.
        string forwardedId = await MessageSubmitter.SubmitAsync(signedStore, new MemoryStream(Encoding.UTF8.GetBytes(message)), request);
        await MailNetwork.PassAsync(From("127.0.0.8"), signedStore, [forwardedId]);
        var second = await ArrivedAsync(inbox, 2, receiver);
        Has(@"(?i)spf=fail", second, receiver);
        Has(@"(?i)dmarc=pass", second, receiver);

        // The same mail unsigned from there: DMARC fails and p=reject refuses it; MailOps bounces it.
        using var unsignedQueue = new TempQueue();
        using var unsignedStore = unsignedQueue.Open();
        string unsignedId = await MessageSubmitter.SubmitAsync(unsignedStore, new MemoryStream(Encoding.UTF8.GetBytes(message)), request);
        await MailNetwork.PassAsync(From("127.0.0.8"), unsignedStore, [unsignedId]);
        var refused = unsignedStore.ReadJournal(unsignedId).Where(e => e.Event == JournalEventType.Attempt && e.Recipient is not null).ToList();
        Assert.True(refused.Count == 1 && refused[0].Status?.StartsWith('5') == true, $"expected a 5xx refusal: {string.Join("; ", refused.Select(e => $"{e.Status} {e.Detail}"))}");
        Assert.Contains("rejected by the strict receiver's policy", refused[0].Detail);
        Assert.Equal(2, inbox.Messages().Count);
    }

    private static void Has(string pattern, string message, StrictReceiver receiver) =>
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(message, pattern), $"/{pattern}/ not in:\n{message}\nThe receiver's logs:\n{receiver.Log()}");

    private static async Task<string> ArrivedAsync(Receiver inbox, int count, StrictReceiver receiver)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (inbox.Messages().Count < count && DateTime.UtcNow < deadline) await Task.Delay(200);
        var messages = inbox.Messages();
        Assert.True(messages.Count >= count, "Postfix did not relay the message: " + receiver.Log());
        return messages.OrderBy(m => m.Envelope.Arrived).Last().Body;
    }

    private static async Task<StrictReceiver> StartAsync(MailNetwork net, string ip, string relay)
    {
        string dir = Path.Combine(net.Sender.Root, "strict");
        var start = Programs.StartInfo("bash", [Path.Combine(Programs.RepoRoot, "tests", "peers", "strict-receiver.sh"),
            "--dir", dir, "--listen", $"{ip}:{net.Port}", "--dns-port", net.DnsPort.ToString(), "--relay", $"{relay}:{net.Port}", "--domains", "far.test", "--lifetime", "300"]);
        var process = Process.Start(start)!;
        var receiver = new StrictReceiver(process, dir);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        string? line;
        do line = await process.StandardOutput.ReadLineAsync(wait.Token);
        while (line is not null && line != "READY");
        if (line is null)
        {
            receiver.Dispose();
            Assert.Fail("the strict receiver did not start: " + await process.StandardError.ReadToEndAsync());
        }
        return receiver;
    }

    /// <summary>The running script: closing its stdin stops Postfix and rspamd.</summary>
    private sealed class StrictReceiver(Process process, string dir) : IDisposable
    {
        public string Log()
        {
            string Tail(string path) => File.Exists(path) ? string.Join("\n", File.ReadLines(path).TakeLast(15)) : "";
            var rspamd = Path.Combine(dir, "rspamd", "log", "rspamd.log");
            return Tail(Path.Combine(dir, "postfix", "maillog")) + "\n" + (File.Exists(rspamd) ? string.Join("\n", File.ReadLines(rspamd).Where(l => l.Contains("rspamd_task_write_log"))) : "");
        }

        public void Dispose()
        {
            try { process.StandardInput.Close(); } catch (IOException) { }
            if (!process.WaitForExit(30_000)) process.Kill(entireProcessTree: true);
            process.Dispose();
        }
    }
}
