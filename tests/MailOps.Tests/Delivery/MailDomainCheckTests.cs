using System.Net;
using MailOps.Core.Dkim;
using MailOps.Core.Dns;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// Test-MailDomain's checks against records served by dnsmasq: a domain that publishes everything
/// passes, one that publishes wrong or no records fails with the record to publish.
/// </summary>
public sealed class MailDomainCheckTests
{
    [PeerFact("dnsmasq")]
    public async Task A_domain_with_its_records_passes_and_one_without_gets_the_records_to_publish()
    {
        await using var net = new MailNetwork();
        var keys = new DkimKeys(net.Sender.QueuePath);
        var good = keys.Generate("good.test", "s1", DkimAlgorithm.Ed25519);
        var local = keys.Generate("bad.test", "s1", DkimAlgorithm.Ed25519);
        var other = new DkimKeys(Path.Combine(net.Sender.Root, "elsewhere")).Generate("bad.test", "s1", DkimAlgorithm.Ed25519);
        await net.StartDnsAsync(
            "--mx-host=good.test,mx.good.test,10", "--host-record=mx.good.test,127.0.0.2",
            "--host-record=out.good.test,127.0.0.9", "--ptr-record=9.0.0.127.in-addr.arpa,out.good.test",
            "--txt-record=good.test,v=spf1 mx ip4:127.0.0.9 -all",
            $"--txt-record={good.RecordName},{good.TxtRecord}",
            "--txt-record=_dmarc.good.test,v=DMARC1; p=reject; rua=mailto:d@good.test",
            "--txt-record=_smtp._tls.good.test,v=TLSRPTv1; rua=mailto:t@good.test",
            "--mx-host=bad.test,mx.good.test,10",
            "--txt-record=bad.test,v=spf1 ip4:10.1.2.3 -all",
            $"--txt-record={other.RecordName},{other.TxtRecord}",
            "--txt-record=_dmarc.bad.test,v=DMARC1; p=none");
        var config = net.SenderConfig(c => c.HostName = "out.good.test");
        var checker = new MailDomainChecker(config, net.Sender.QueuePath);

        var passing = (await checker.CheckAsync("good.test")).ToDictionary(c => c.Check);
        foreach (var name in new[] { "MX", "SPF", "DKIM", "DMARC", "TLS-RPT", "HELO", "PTR" })
            Assert.True(passing[name].Status == CheckStatus.Pass, $"{name}: {passing[name].Status} {passing[name].Detail}");
        Assert.Equal(CheckStatus.Warn, passing["MTA-STS"].Status);
        Assert.StartsWith("_mta-sts.good.test. IN TXT \"v=STSv1; id=", passing["MTA-STS"].Record);

        var failing = (await checker.CheckAsync("bad.test")).ToDictionary(c => c.Check);
        Assert.Equal(CheckStatus.Fail, failing["SPF"].Status);
        Assert.Contains("127.0.0.9: fail", failing["SPF"].Detail);
        Assert.Equal("bad.test. IN TXT \"v=spf1 ip4:10.1.2.3 ip4:127.0.0.9 -all\"", failing["SPF"].Record);
        Assert.Equal(CheckStatus.Fail, failing["DKIM"].Status);
        Assert.Contains("not the local one", failing["DKIM"].Detail);
        Assert.Equal($"{local.RecordName}. IN TXT \"{local.TxtRecord}\"", failing["DKIM"].Record);
        Assert.Equal(CheckStatus.Warn, failing["DMARC"].Status);
        Assert.Equal(CheckStatus.Warn, failing["TLS-RPT"].Status);

        // Sending from an address with no reverse name and not in HostName's records.
        var elsewhere = (await checker.CheckAsync("good.test", [IPAddress.Parse("127.0.0.8")])).ToDictionary(c => c.Check);
        Assert.Equal(CheckStatus.Fail, elsewhere["SPF"].Status);
        Assert.Equal(CheckStatus.Fail, elsewhere["HELO"].Status);
        Assert.Equal(CheckStatus.Fail, elsewhere["PTR"].Status);
        Assert.Equal("out.good.test. IN A 127.0.0.8", elsewhere["HELO"].Record);
        Assert.StartsWith("8.0.0.127.in-addr.arpa. IN PTR out.good.test. ", elsewhere["PTR"].Record);

        // The CLI: the same checks as JSON, exit 1 because one fails.
        string configFile = Path.Combine(net.Sender.Root, "config.json");
        File.WriteAllText(configFile, $$"""{"HostName": "out.good.test", "DnsServers": ["127.0.0.1:{{net.DnsPort}}"]}""");
        var cli = await Programs.MailopsAsync(null, "domain", "check", "bad.test", "--json", "--config", configFile, "--queue", net.Sender.QueuePath);
        Assert.True(cli.ExitCode == 1, cli.ToString());
        var json = System.Text.Json.JsonDocument.Parse(cli.Stdout).RootElement.EnumerateArray().ToDictionary(e => e.GetProperty("check").GetString()!);
        Assert.Equal("Fail", json["SPF"].GetProperty("status").GetString());
        Assert.Equal(failing["DKIM"].Record, json["DKIM"].GetProperty("record").GetString());

        var missing = (await checker.CheckAsync("nowhere.test")).ToDictionary(c => c.Check);
        Assert.Equal(CheckStatus.Fail, missing["MX"].Status);
        Assert.Equal(CheckStatus.Fail, missing["DMARC"].Status);
        Assert.Equal("_dmarc.nowhere.test. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@nowhere.test\"", missing["DMARC"].Record);
    }
}
