using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MailOps.Core.Config;
using MailOps.Core.Delivery.Remote;
using MailOps.Core.Queue;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// MTA-STS (RFC 8461) against policy hosts on loopback: dnsmasq publishes the _mta-sts records and
/// the MX hosts, tests/peers/policyhost.py serves the policies over HTTPS with a certificate from a
/// test CA that the sender trusts through TlsTrustAnchors; the MX hosts are MailOps listeners.
/// </summary>
[Collection(MtaStsCollection.Name)]
public sealed class MtaStsTests
{
    private const string PolicyHost = "127.0.0.7";

    [PeerFact("dnsmasq", "python3")]
    public async Task Enforce_defers_a_wrong_certificate_or_an_unlisted_mx_testing_delivers_and_the_policy_is_cached()
    {
        await using var net = new MailNetwork();
        using var ca = new TestCa();
        string root = net.Sender.Root, policies = Path.Combine(root, "policies");
        Directory.CreateDirectory(policies);
        ca.WritePem(Path.Combine(root, "ca.pem"));
        using (var hostCertificate = ca.Issue("mta-sts.good.test", "mta-sts.bad.test", "mta-sts.lax.test", "mta-sts.other.test"))
            TestCa.WritePem(hostCertificate, Path.Combine(root, "policy.pem"), Path.Combine(root, "policy.key"));
        File.WriteAllText(Path.Combine(policies, "mta-sts.good.test.txt"), "version: STSv1\r\nmode: enforce\r\nmx: mx.good.test\r\nmax_age: 86400\r\n");
        File.WriteAllText(Path.Combine(policies, "mta-sts.bad.test.txt"), "version: STSv1\r\nmode: enforce\r\nmx: *.bad.test\r\nmax_age: 86400\r\n");
        File.WriteAllText(Path.Combine(policies, "mta-sts.lax.test.txt"), "version: STSv1\nmode: testing\nmx: mx.bad.test\nmax_age: 86400\n");
        File.WriteAllText(Path.Combine(policies, "mta-sts.other.test.txt"), "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n");

        var records = new List<string>
        {
            "--mx-host=good.test,mx.good.test,10", "--host-record=mx.good.test,127.0.0.2",
            "--mx-host=bad.test,mx.bad.test,10", "--host-record=mx.bad.test,127.0.0.3",
            "--mx-host=lax.test,mx.bad.test,10", "--mx-host=other.test,mx.good.test,10",
        };
        foreach (var domain in new[] { "good", "bad", "lax", "other" })
        {
            records.Add($"--txt-record=_mta-sts.{domain}.test,v=STSv1; id=2026112701");
            records.Add($"--host-record=mta-sts.{domain}.test,{PolicyHost}");
        }
        await net.StartDnsAsync(records.ToArray());

        // mx.good.test shows a certificate for its name; mx.bad.test one for another name.
        using var goodCertificate = ca.Issue("mx.good.test");
        using var wrongCertificate = ca.Issue("wrong.test");
        var good = await net.StartReceiverAsync("127.0.0.2", c => c.Tls = new TlsSettings { CertificatePath = TestCa.WritePfx(goodCertificate, Path.Combine(root, "good.pfx")) });
        var bad = await net.StartReceiverAsync("127.0.0.3", c => c.Tls = new TlsSettings { CertificatePath = TestCa.WritePfx(wrongCertificate, Path.Combine(root, "wrong.pfx")) });

        int port = TestPorts.Free([PolicyHost]);
        using var policyHost = StartPolicyHost(root, policies, port);
        await WaitForReadyAsync(policyHost);
        MtaStsResolver.HttpsPort = port;

        var config = net.SenderConfig(c => c.TlsTrustAnchors = Path.Combine(root, "ca.pem"));
        var store = net.OpenSenderStore();
        string verified = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@good.test"]);
        string mismatched = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@bad.test"]);
        string testing = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@lax.test"]);
        string unlisted = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@other.test"]);
        await MailNetwork.PassAsync(config, store);

        Assert.True(store.ReadEnvelope(verified) is null, store.ReadEnvelope(verified)?.Recipients[0].LastError);
        Assert.Contains("(verified, MTA-STS enforce)", MailNetwork.DeliveredTls(store, verified));

        var refused = store.ReadEnvelope(mismatched)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, refused.State);
        Assert.Equal("4.7.5", refused.Status);
        Assert.Contains("MTA-STS enforce", refused.LastError);
        Assert.Contains("not for this host name", refused.LastError);

        Assert.True(store.ReadEnvelope(testing) is null, store.ReadEnvelope(testing)?.Recipients[0].LastError);
        Assert.Contains("not verified: the certificate is not for this host name, MTA-STS testing", MailNetwork.DeliveredTls(store, testing));

        var notListed = store.ReadEnvelope(unlisted)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, notListed.State);
        Assert.Equal("4.7.5", notListed.Status);
        Assert.Contains("MTA-STS policy", notListed.LastError);

        Assert.Single(good.Messages());
        Assert.Single(bad.Messages()); // the testing one only
        Assert.True(File.Exists(Path.Combine(net.Sender.QueuePath, "control", "mta-sts", "bad.test")));

        // A new server (a restart) with the policy host gone: the kept policy still applies, unfetched.
        policyHost.StandardInput.Close();
        await policyHost.WaitForExitAsync();
        string again = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@bad.test"]);
        await MailNetwork.PassAsync(config, store, [again]);
        Assert.Equal("4.7.5", store.ReadEnvelope(again)!.Recipients.Single().Status);
        Assert.Single(bad.Messages());
        Assert.Equal(4, File.ReadAllLines(Path.Combine(policies, "fetches.log")).Length); // one fetch per domain in all
    }

    [Fact]
    public void A_policy_is_parsed_as_RFC_8461_says_and_mx_wildcards_match_one_label()
    {
        var policy = MtaStsPolicy.Parse("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 99999999999\n", "1", DateTimeOffset.UnixEpoch, out var error);
        Assert.Null(error);
        Assert.True(policy!.IsEnforce);
        Assert.Equal(TimeSpan.FromSeconds(31_557_600), policy.MaxAge);
        Assert.True(policy.Allows("MAIL.example.com."));
        Assert.True(policy.Allows("mx1.example.net"));
        Assert.False(policy.Allows("a.b.example.net"));
        Assert.False(policy.Allows("example.net"));
        Assert.False(policy.Allows("other.example.com"));
        Assert.Null(MtaStsPolicy.Parse("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n", "1", DateTimeOffset.UnixEpoch, out error));
        Assert.Contains("STSv1", error);
        Assert.Null(MtaStsPolicy.Parse("version: STSv1\nmode: enforce\nmax_age: 1\n", "1", DateTimeOffset.UnixEpoch, out error));
        Assert.Contains("mx", error);
    }

    private static Process StartPolicyHost(string root, string policies, int port)
    {
        var start = Programs.StartInfo("/usr/bin/python3", [Path.Combine(Programs.RepoRoot, "tests", "peers", "policyhost.py"),
            "--cert", Path.Combine(root, "policy.pem"), "--key", Path.Combine(root, "policy.key"), "--dir", policies,
            "--address", PolicyHost, "--port", port.ToString(), "--lifetime", "120"]);
        start.RedirectStandardInput = true;
        return Process.Start(start)!;
    }

    internal static async Task WaitForReadyAsync(Process process)
    {
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string? line = await process.StandardOutput.ReadLineAsync(wait.Token);
        if (line != "READY") Assert.Fail("the peer did not start: " + line + await process.StandardError.ReadToEndAsync());
    }

}

/// <summary>MtaStsResolver.HttpsPort is process-wide: tests that set it do not run side by side.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MtaStsCollection
{
    public const string Name = "MTA-STS policy port";
}
