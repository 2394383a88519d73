using System.Net;
using MailOps.Core.Dns;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>MailOps's SPF evaluation against python3-spf (pyspf), a verifier nobody here wrote, on the same records from dnsmasq.</summary>
public sealed class SpfEvaluatorTests
{
    private const string PySpf = """
        import sys, dns.resolver, spf
        r = dns.resolver.Resolver(configure=False); r.nameservers = ["127.0.0.1"]; r.port = int(sys.argv[1])
        dns.resolver.default_resolver = r
        for case in sys.argv[2:]:
            ip, domain = case.split(",")
            print(spf.check2(i=ip, s="someone@" + domain, h="client.test")[0])
        """;

    [PeerFact("dnsmasq", "python3")]
    public async Task Every_result_agrees_with_pyspf()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync(
            "--txt-record=pass.test,v=spf1 ip4:127.0.0.0/29 -all",
            "--txt-record=soft.test,v=spf1 a:host.soft.test ~all", "--host-record=host.soft.test,127.0.0.3",
            "--txt-record=inc.test,v=spf1 include:pass.test ?all",
            "--txt-record=mx.test,v=spf1 mx/30 -all", "--mx-host=mx.test,mx.mx.test,10", "--host-record=mx.mx.test,127.0.0.9",
            "--txt-record=redir.test,v=spf1 redirect=pass.test",
            "--txt-record=perm.test,v=spf1 foo:bar -all",
            "--txt-record=two.test,v=spf1 -all", "--txt-record=two.test,v=spf1 +all",
            "--txt-record=macro.test,v=spf1 exists:%{i}._spf.%{d} -all", "--host-record=127.0.0.2._spf.macro.test,127.0.0.2",
            "--txt-record=loop.test,v=spf1 include:loop.test -all",
            "--txt-record=void.test,v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test -all",
            "--txt-record=cidr.test,v=spf1 ip4:127.0.0.77/24 -all");
        string[] cases =
        [
            "127.0.0.2,pass.test", "127.0.0.20,pass.test", "127.0.0.3,soft.test", "127.0.0.4,soft.test",
            "127.0.0.2,inc.test", "127.0.0.20,inc.test", "127.0.0.10,mx.test", "127.0.0.20,mx.test",
            "127.0.0.2,redir.test", "127.0.0.2,perm.test", "127.0.0.2,two.test", "127.0.0.2,none.test",
            "127.0.0.2,macro.test", "127.0.0.3,macro.test", "127.0.0.2,loop.test", "127.0.0.2,void.test", "127.0.0.200,cidr.test",
        ];
        var python = await Programs.RunAsync("/usr/bin/python3", ["-c", PySpf, net.DnsPort.ToString(), .. cases]);
        Assert.True(python.ExitCode == 0, python.ToString());
        var expected = python.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var evaluator = new SpfEvaluator(MailOps.Core.Dns.DnsEndpoint.CreateClient([$"127.0.0.1:{net.DnsPort}"]));
        var disagreements = new List<string>();
        for (int i = 0; i < cases.Length; i++)
        {
            var (ip, domain) = (cases[i].Split(',')[0], cases[i].Split(',')[1]);
            var (result, detail) = await evaluator.CheckHostAsync(IPAddress.Parse(ip), domain, "someone@" + domain, "client.test");
            if (!result.ToString().Equals(expected[i], StringComparison.OrdinalIgnoreCase)) disagreements.Add($"{cases[i]}: pyspf {expected[i]}, MailOps {result} ({detail})");
        }
        Assert.True(disagreements.Count == 0, string.Join("\n", disagreements));
        // Every result of RFC 7208 but temperror is among the cases.
        Assert.Equal(["fail", "neutral", "none", "pass", "permerror", "softfail"], expected.Distinct().Order());
    }
}
