using System.Net;
using System.Text;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Tests.Delivery;

namespace MailOps.Tests.Smtp;

/// <summary>
/// SPF, DKIM, DMARC and ARC on mail from the Internet for our domains: messages signed with
/// dkimsign (python3-dkim), records from dnsmasq, clients on several 127.0.0.x addresses; the
/// DKIM verdicts are compared with python3-dkim's on the same stored bytes.
/// </summary>
public sealed class InboundAuthenticationTests : ListenerTestBase
{
    private const string PyVerify = """
        import sys, dkim, dns.resolver
        r = dns.resolver.Resolver(configure=False); r.nameservers = ['127.0.0.1']; r.port = int(sys.argv[2])
        def lookup(name, timeout=5):
            return b''.join(b''.join(rr.strings) for rr in r.resolve(name.decode().rstrip('.'), 'TXT'))
        try:
            print('pass' if dkim.DKIM(open(sys.argv[1], 'rb').read()).verify(dnsfunc=lookup) else 'fail')
        except dkim.ValidationError:
            print('fail')
        """;

    private static readonly IPAddress Authorised = IPAddress.Parse("127.0.0.2"), Elsewhere = IPAddress.Parse("127.0.0.3");

    private static async Task<string> DkimSignAsync(string key, string selector, string domain, string message)
    {
        var signed = await Programs.RunAsync("dkimsign", [selector, domain, key], stdin: message);
        Assert.True(signed.ExitCode == 0, signed.ToString());
        return signed.Stdout.Replace("\r\n", "\n").Replace("\n", "\r\n");
    }

    private static async Task<string?> SendAsync(IPEndPoint endpoint, IPAddress from, string sender, string message)
    {
        using var client = new RawSmtpClient(endpoint, from);
        await client.ReplyAsync();
        await client.SendAsync($"EHLO client.test\r\nMAIL FROM:<{sender}>\r\nRCPT TO:<alice@self.test>\r\nDATA\r\n");
        for (int i = 0; i < 4; i++) await client.ReplyAsync();
        string body = string.Join("\r\n", message.TrimEnd('\r', '\n').Split("\r\n").Select(l => l.StartsWith('.') ? "." + l : l));
        await client.SendAsync(body + "\r\n.\r\n");
        return await client.ReplyAsync();
    }

    [PeerFact("dnsmasq", "python3", "openssl", "dkimsign")]
    public async Task SPF_DKIM_and_DMARC_verdicts_agree_with_the_verifiers_and_each_policy_is_applied()
    {
        await using var net = new MailNetwork();
        string dir = net.Sender.Root, key = Path.Combine(dir, "dkim.key");
        Assert.Equal(0, (await Programs.RunAsync("openssl", ["genrsa", "-traditional", "-out", key, "2048"])).ExitCode);
        string spki = (await Programs.RunAsync("sh", ["-c", $"openssl rsa -in {key} -pubout -outform DER 2>/dev/null | base64 -w0"])).Stdout.Trim();
        string record = "v=DKIM1; k=rsa; p=" + spki;
        await net.StartDnsAsync(
            "--txt-record=good.test,v=spf1 ip4:127.0.0.2 -all", "--txt-record=_dmarc.good.test,v=DMARC1; p=reject",
            "--txt-record=s1._domainkey.good.test," + string.Join(",", record.Chunk(255).Select(c => new string(c))),
            "--txt-record=quar.test,v=spf1 -all", "--txt-record=_dmarc.quar.test,v=DMARC1; p=quarantine",
            "--txt-record=_dmarc.mon.test,v=DMARC1; p=none",
            "--txt-record=bounce.strict.test,v=spf1 ip4:127.0.0.2 -all", "--txt-record=_dmarc.strict.test,v=DMARC1; p=reject; aspf=s",
            "--txt-record=bounce.relax.test,v=spf1 ip4:127.0.0.2 ~all", "--txt-record=_dmarc.relax.test,v=DMARC1; p=reject",
            "--txt-record=perm.test,v=spf1 foo -all");
        var endpoint = Start(c => { c.DnsServers = [$"127.0.0.1:{net.DnsPort}"]; c.InboundAuthentication = "Enforce"; c.HoldIncoming = false; });

        string Message(string from, string subject, string extra = "") =>
            $"{extra}From: {from}\r\nTo: alice@self.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\nDate: Fri, 27 Nov 2026 20:00:00 +0000\r\n\r\nQuarterly numbers.\r\n";
        string signed = await DkimSignAsync(key, "s1", "good.test", Message("ceo@good.test", "signed"));

        // 1. Signed, from the address SPF names: all pass.
        Assert.StartsWith("250", await SendAsync(endpoint, Authorised, "ceo@good.test", signed));
        // 2. The same, body changed after signing, from elsewhere: DKIM fails, SPF fails, p=reject refuses it.
        string tampered = signed.Replace("Quarterly numbers.", "Wire the money.");
        Assert.StartsWith("550 5.7.1", await SendAsync(endpoint, Elsewhere, "ceo@good.test", tampered));
        // 3. Signed with a selector that has no key, from the SPF address: DKIM permerror, DMARC passes by SPF.
        string noKey = await DkimSignAsync(key, "s9", "good.test", Message("ceo@good.test", "nokey"));
        Assert.StartsWith("250", await SendAsync(endpoint, Authorised, "ceo@good.test", noKey));
        // 4. p=quarantine, failing: accepted and held.  5. p=none, failing: accepted, delivered as usual.
        Assert.StartsWith("250", await SendAsync(endpoint, Elsewhere, "x@quar.test", Message("x@quar.test", "quarantined")));
        Assert.StartsWith("250", await SendAsync(endpoint, Elsewhere, "x@mon.test", Message("x@mon.test", "monitored")));
        // 6. A forged Authentication-Results in our name is neutralised.
        Assert.StartsWith("250", await SendAsync(endpoint, Authorised, "ceo@good.test",
            await DkimSignAsync(key, "s1", "good.test", Message("ceo@good.test", "forged", "Authentication-Results: mx.test; dmarc=pass header.from=bank.test\r\n"))));

        // 7. Alignment: SPF passes for bounce.strict.test, but aspf=s wants exactly strict.test (refused);
        //    relaxed alignment takes bounce.relax.test for relax.test.
        Assert.StartsWith("550 5.7.1", await SendAsync(endpoint, Authorised, "x@bounce.strict.test", Message("x@strict.test", "strict")));
        Assert.StartsWith("250", await SendAsync(endpoint, Authorised, "x@bounce.relax.test", Message("x@relax.test", "relaxed")));
        // 8. SPF softfail and permerror, under a p=none From: domain so that they are accepted.
        Assert.StartsWith("250", await SendAsync(endpoint, Elsewhere, "x@bounce.relax.test", Message("x@mon.test", "softfail")));
        Assert.StartsWith("250", await SendAsync(endpoint, Elsewhere, "x@perm.test", Message("x@mon.test", "permerror")));

        var stored = _f!.Store.List().Select(m => (Envelope: _f.Store.ReadEnvelope(m.Id)!, Raw: Raw(m.Id))).ToDictionary(m => m.Envelope.Subject!);
        Assert.Equal(["forged", "monitored", "nokey", "permerror", "quarantined", "relaxed", "signed", "softfail"], stored.Keys.Order());
        Assert.Contains("spf=pass smtp.mailfrom=x@bounce.relax.test", Results("relaxed"));
        Assert.Contains("dmarc=pass (p=reject) header.from=relax.test", Results("relaxed"));
        Assert.Contains("spf=softfail", Results("softfail"));
        Assert.Contains("spf=permerror", Results("permerror"));
        string Results(string subject) => stored[subject].Raw.Split("\r\n\r\n")[0].Replace("\r\n\t", " ");
        Assert.Matches(@"^Authentication-Results: mx\.test; spf=pass smtp\.mailfrom=ceo@good\.test; dkim=pass header\.d=good\.test header\.s=s1; dmarc=pass \(p=reject\) header\.from=good\.test; arc=none", Results("signed"));
        Assert.Contains("dkim=permerror header.d=good.test header.s=s9", Results("nokey"));
        Assert.Contains("dmarc=pass", Results("nokey"));
        Assert.Contains("dmarc=fail (p=quarantine)", Results("quarantined"));
        Assert.All(stored["quarantined"].Envelope.Recipients, r => Assert.Equal(RecipientState.Held, r.State));
        Assert.Contains("spf=none", Results("monitored"));
        Assert.Contains("dmarc=fail (p=none)", Results("monitored"));
        Assert.All(stored["monitored"].Envelope.Recipients, r => Assert.NotEqual(RecipientState.Held, r.State));
        Assert.Contains("\r\nX-Removed-Auth-Results: mx.test; dmarc=pass header.from=bank.test\r\n", stored["forged"].Raw);
        Assert.Single(Results("forged").Split("\r\n"), l => l.StartsWith("Authentication-Results:"));

        // python3-dkim reads the stored bytes as MailOps did.
        foreach (var (subject, expected) in new[] { ("signed", "pass"), ("forged", "pass") })
        {
            string path = Path.Combine(dir, subject + ".eml");
            await File.WriteAllTextAsync(path, stored[subject].Raw);
            var verdict = await Programs.RunAsync("/usr/bin/python3", ["-c", PyVerify, path, net.DnsPort.ToString()]);
            Assert.Equal(expected, verdict.Stdout.Trim());
        }
        string tamperedPath = Path.Combine(dir, "tampered.eml");
        await File.WriteAllTextAsync(tamperedPath, tampered);
        Assert.Equal("fail", (await Programs.RunAsync("/usr/bin/python3", ["-c", PyVerify, tamperedPath, net.DnsPort.ToString()])).Stdout.Trim());
    }

    [Fact]
    public async Task With_DNS_failing_every_result_is_temporary_and_the_mail_is_accepted()
    {
        var endpoint = Start(c => { c.DnsServers = ["127.0.0.1:9"]; c.InboundAuthentication = "Enforce"; });
        Assert.StartsWith("250", await SendAsync(endpoint, Elsewhere, "ceo@good.test",
            "From: ceo@good.test\r\nTo: alice@self.test\r\nSubject: dns down\r\n\r\nhello\r\n"));
        var id = Assert.Single(_f!.Store.List()).Id;
        string header = Raw(id).Split("\r\n\r\n")[0];
        Assert.Contains("spf=temperror", header);
        Assert.Contains("dmarc=temperror", header);
    }

    private string Raw(string id)
    {
        using var s = _f!.Store.OpenBody(id);
        using var reader = new StreamReader(s, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
