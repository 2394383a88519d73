using System.Net;
using System.Text;
using MailOps.Core.Dkim;
using MailOps.Core.Queue;
using MailOps.Core.Smtp;
using MailOps.Core.Submission;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// DKIM signing, checked by a verifier nobody here wrote: python3-dkim (Debian), looking the keys up
/// as TXT records served by dnsmasq, after the message went through MailOps and a second MailOps hop.
/// </summary>
public sealed class DkimSigningTests
{
    private const string Verify = """
        import sys, dkim, dns.resolver
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ['127.0.0.1']; r.port = int(sys.argv[2])
        def lookup(name, timeout=5):
            return b''.join(b''.join(rr.strings) for rr in r.resolve(name.decode().rstrip('.'), 'TXT'))
        msg = open(sys.argv[1], 'rb').read()
        header = msg.split(b'\r\n\r\n', 1)[0]
        count = sum(1 for line in header.split(b'\r\n') if line.lower().startswith(b'dkim-signature:'))
        for i in range(count):
            try:
                ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=lookup)
            except dkim.ValidationError:
                ok = False
            print(i, 'pass' if ok else 'fail')
        """;

    /// <summary>dnsmasq options publishing <paramref name="key"/>'s TXT record, in strings of at most 255 octets.</summary>
    private static string TxtRecord(DkimKey key) =>
        $"--txt-record={key.RecordName}," + string.Join(",", key.TxtRecord.Chunk(255).Select(c => new string(c)));

    private static async Task<string> VerifyAsync(MailNetwork net, byte[] message)
    {
        string path = Path.Combine(net.Sender.Root, Guid.NewGuid().ToString("N") + ".eml");
        await File.WriteAllBytesAsync(path, message);
        var result = await Programs.RunAsync("/usr/bin/python3", ["-c", Verify, path, net.DnsPort.ToString()]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Stdout;
    }

    private static async Task<byte[]> BodyOf(QueueStore store, string id)
    {
        await using var s = store.OpenBody(id);
        var ms = new MemoryStream();
        await s.CopyToAsync(ms);
        return ms.ToArray();
    }

    [PeerFact("dnsmasq", "python3")]
    public async Task Rsa_and_Ed25519_signatures_verify_after_two_MailOps_hops_and_fail_when_the_message_is_changed()
    {
        await using var net = new MailNetwork();
        var keys = new DkimKeys(net.Sender.QueuePath);
        var rsa = keys.Generate("app.test", "s2026", DkimAlgorithm.Rsa);
        var ed = keys.Generate("app.test", "e2026", DkimAlgorithm.Ed25519);
        await net.StartDnsAsync("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.3", TxtRecord(rsa), TxtRecord(ed));
        var far = await net.StartReceiverAsync("127.0.0.3", c => c.HoldIncoming = true);
        var store = net.OpenSenderStore();
        var config = net.SenderConfig(c => { c.Listen = [$"127.0.0.2:{net.Port}"]; c.RelayClients = ["127.0.0.0/8"]; });
        await using var first = new SmtpListener(new SmtpServerContext(config, store));
        first.Start();

        // A relay client's message: 8-bit body, dot lines, a folded header, one-click unsubscribe.
        string body = "From: Shop <news@app.test>\r\nTo: u@far.test\r\nSubject: Gr\u00fc\u00dfe and a subject long enough\r\n  to be folded\r\n" +
                      "Message-ID: <dkim@app.test>\r\nList-Unsubscribe: <https://app.test/u/1>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
                      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
                      ".\r\n..x\r\n.x\r\nGr\u00fc\u00dfe, \u00fcn\u00efc\u00f6d\u00e9   \r\n\r\n\r\n";
        Assert.StartsWith("250", await RawSmtpClient.SendMessageAsync(new IPEndPoint(IPAddress.Parse("127.0.0.2"), net.Port), "client.test", "news@app.test", "u@far.test", body, " BODY=8BITMIME"));
        var queued = Assert.Single(store.List());
        byte[] signed = await BodyOf(store, queued.Id);
        Assert.Equal(signed.Length, queued.Size);
        string text = Encoding.UTF8.GetString(signed);
        Assert.StartsWith("DKIM-Signature: v=1; a=ed25519-sha256; d=app.test; s=e2026; c=relaxed/relaxed;", text);
        Assert.Contains("a=rsa-sha256; d=app.test; s=s2026", text);
        string unfolded = text.Replace("\r\n\t", "").Replace("\r\n ", "");
        Assert.DoesNotContain("\n", text.Replace("\r\n", "")); // CRLF only, the signature's folding too
        Assert.Contains("h=from:from:to:subject:message-id:mime-version:content-type:content-transfer-encoding:list-unsubscribe:list-unsubscribe-post;", unfolded);
        Assert.EndsWith(body, text); // the message itself is untouched, byte for byte

        await MailNetwork.PassAsync(config, store);
        var delivered = Assert.Single(far.Messages());
        byte[] received = Encoding.UTF8.GetBytes(delivered.Body);
        Assert.Equal("0 pass\n1 pass\n", await VerifyAsync(net, received));

        // A verifier that can fail: one changed octet of the body breaks both signatures.
        byte[] tampered = Encoding.UTF8.GetBytes(delivered.Body.Replace("..x", ".x."));
        Assert.Equal("0 fail\n1 fail\n", await VerifyAsync(net, tampered));
    }

    [PeerFact("dnsmasq", "python3")]
    public async Task A_message_too_large_to_be_kept_in_memory_is_signed_from_its_file()
    {
        // Small messages are signed from the copy kept while they were received; this one (over
        // 256 KiB) is read back from the spool file and moved down in place.
        await using var net = new MailNetwork();
        var keys = new DkimKeys(net.Sender.QueuePath);
        var ed = keys.Generate("app.test", "e1", DkimAlgorithm.Ed25519);
        await net.StartDnsAsync(TxtRecord(ed));
        var store = net.OpenSenderStore();
        var line = new string('x', 76) + "\n";
        string message = "From: a@app.test\nSubject: large\n\n" + string.Concat(Enumerable.Range(0, 4000).Select(i => i.ToString("D6") + line));
        var request = new SubmissionRequest { HostName = "app.test", DefaultDomain = "app.test", Recipients = ["u@far.test"], DotEndsInput = false };
        string id = await MessageSubmitter.SubmitAsync(store, new MemoryStream(Encoding.UTF8.GetBytes(message)), request);
        byte[] signed = await BodyOf(store, id);
        Assert.True(signed.Length > 300 * 1024);
        Assert.Equal(store.ReadEnvelope(id)!.Size, signed.Length);
        Assert.EndsWith("003999" + line.Replace("\n", "\r\n"), Encoding.ASCII.GetString(signed));
        Assert.Equal("0 pass\n", await VerifyAsync(net, signed));
    }

    [PeerFact("dnsmasq", "python3")]
    public async Task Local_submission_is_signed_and_a_domain_without_a_key_or_a_stranger_is_not()
    {
        await using var net = new MailNetwork();
        var keys = new DkimKeys(net.Sender.QueuePath);
        var rsa = keys.Generate("app.test", "s1");
        await net.StartDnsAsync(TxtRecord(rsa));
        var store = net.OpenSenderStore();
        var request = new SubmissionRequest { HostName = "app.test", DefaultDomain = "app.test", Recipients = ["u@far.test"], DotEndsInput = false };
        string signedId = await MessageSubmitter.SubmitAsync(store, new MemoryStream("From: a@app.test\nSubject: local\n\nhello\n"u8.ToArray()), request);
        string otherId = await MessageSubmitter.SubmitAsync(store, new MemoryStream("From: a@other.test\nSubject: other\n\nhello\n"u8.ToArray()), request);

        Assert.Contains("0 pass", await VerifyAsync(net, await BodyOf(store, signedId)));
        Assert.DoesNotContain("DKIM-Signature", Encoding.UTF8.GetString(await BodyOf(store, otherId)));
        Assert.Equal(["s1"], keys.List("app.test").Select(k => k.Selector));
        Assert.Throws<IOException>(() => keys.Generate("app.test", "s1")); // a published selector is never overwritten
        Assert.Throws<ArgumentException>(() => keys.Generate("app.test", "bad selector"));
        if (OperatingSystem.IsLinux()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(rsa.Path));

        // Over SMTP, a client that is neither authenticated nor a RelayClient gets no signature.
        var config = net.SenderConfig(c => { c.Listen = [$"127.0.0.2:{net.Port}"]; c.RelayClients = []; c.LocalDomains = ["app.test"]; c.Mailboxes = ["*@app.test"]; });
        await using var listener = new SmtpListener(new SmtpServerContext(config, store));
        listener.Start();
        Assert.StartsWith("250", await RawSmtpClient.SendMessageAsync(new IPEndPoint(IPAddress.Parse("127.0.0.2"), net.Port), "stranger.test", "x@stranger.test", "a@app.test", "From: forged@app.test\r\nSubject: stranger\r\n\r\nx\r\n"));
        var stranger = store.List().Single(m => m.Subject == "stranger");
        Assert.DoesNotContain("DKIM-Signature", Encoding.UTF8.GetString(await BodyOf(store, stranger.Id)));
    }
}
