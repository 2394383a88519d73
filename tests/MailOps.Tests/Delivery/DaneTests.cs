using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DnsClient;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// DANE (RFC 7672) against a DNSSEC-signed zone: ldns-keygen and ldns-signzone sign it, unbound
/// serves and validates it (the AD bit), and MailOps listeners on loopback are the MX hosts.
/// </summary>
public sealed class DaneTests
{
    [PeerFact("unbound", "ldns-signzone", "ldns-keygen")]
    public async Task Matching_TLSA_verifies_a_mismatch_defers_and_the_Dane_level_needs_validated_records()
    {
        await using var net = new MailNetwork();
        string root = net.Sender.Root;
        using var ca = new TestCa();
        using var first = ca.Issue("mx1.dane.example");
        using var second = ca.Issue("mx2.dane.example");
        var one = await net.StartReceiverAsync("127.0.0.2", c => c.Tls = new TlsSettings { CertificatePath = TestCa.WritePfx(first, Path.Combine(root, "mx1.pfx")) });
        var two = await net.StartReceiverAsync("127.0.0.3", c => c.Tls = new TlsSettings { CertificatePath = TestCa.WritePfx(second, Path.Combine(root, "mx2.pfx")) });
        string spki = Convert.ToHexString(SHA256.HashData(first.PublicKey.ExportSubjectPublicKeyInfo()));
        string cert512 = Convert.ToHexString(SHA512.HashData(first.RawData));
        int port = net.Port;
        // good: mx1's key (3 1 1). bad: mx2 shows a certificate its record does not name.
        // full: mx1 by its whole certificate (3 0 2). Unsigned MX hosts of plain.example have no
        // DANE, so TlsPolicies Dane makes that mail wait.
        await using var dns = await SignedZone.StartAsync(root, "dane.example", $"""
            good IN MX 10 mx1
            bad IN MX 10 mx2
            full IN MX 10 mx3
            mx1 IN A 127.0.0.2
            mx2 IN A 127.0.0.3
            mx3 IN A 127.0.0.2
            _{port}._tcp.mx1 IN TLSA 3 1 1 {spki}
            _{port}._tcp.mx2 IN TLSA 3 1 1 {spki}
            _{port}._tcp.mx3 IN TLSA 3 0 2 {cert512}
            nodane IN MX 10 mx4
            mx4 IN A 127.0.0.3
            """);

        var config = net.SenderConfig(c =>
        {
            c.DnsServers = [dns.Server];
            c.TlsPolicies = new(StringComparer.OrdinalIgnoreCase) { ["nodane.dane.example"] = "Dane" };
        });
        var store = net.OpenSenderStore();
        string matching = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@good.dane.example"]);
        string mismatched = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@bad.dane.example"]);
        string whole = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@full.dane.example"]);
        string noRecords = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@nodane.dane.example"]);
        await MailNetwork.PassAsync(config, store);

        Assert.True(store.ReadEnvelope(matching) is null, store.ReadEnvelope(matching)?.Recipients[0].LastError);
        Assert.Contains("(verified, DANE)", MailNetwork.DeliveredTls(store, matching));
        Assert.True(store.ReadEnvelope(whole) is null, store.ReadEnvelope(whole)?.Recipients[0].LastError);

        var refused = store.ReadEnvelope(mismatched)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, refused.State);
        Assert.Equal("4.7.5", refused.Status);
        Assert.Contains("matches none of the host's TLSA records", refused.LastError);

        var waiting = store.ReadEnvelope(noRecords)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, waiting.State);
        Assert.Equal("4.7.5", waiting.Status);
        Assert.Contains("no DNSSEC-validated TLSA record", waiting.LastError);

        Assert.Equal(2, one.Messages().Count);
        Assert.Empty(two.Messages());
    }

    [PeerFact("dnsmasq")]
    public async Task Records_that_are_not_validated_are_not_DANE()
    {
        // The same TLSA record from dnsmasq (no DNSSEC, no AD bit) is ignored: opportunistic TLS as before.
        await using var net = new MailNetwork();
        using var ca = new TestCa();
        using var certificate = ca.Issue("mx.plain.test");
        var receiver = await net.StartReceiverAsync("127.0.0.2", c => c.Tls = new TlsSettings { CertificatePath = TestCa.WritePfx(certificate, Path.Combine(net.Sender.Root, "mx.pfx")) });
        await net.StartDnsAsync("--mx-host=plain.test,mx.plain.test,10", "--host-record=mx.plain.test,127.0.0.2",
            $"--dns-rr=_{net.Port}._tcp.mx.plain.test,52,030101{new string('0', 64)}");
        var store = net.OpenSenderStore();
        string id = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@plain.test"]);
        await MailNetwork.PassAsync(net.SenderConfig(), store);
        Assert.True(store.ReadEnvelope(id) is null, store.ReadEnvelope(id)?.Recipients[0].LastError);
        Assert.Contains("(not verified, Opportunistic)", MailNetwork.DeliveredTls(store, id));
        Assert.Single(receiver.Messages());
    }

    private static string DeliveredTls(QueueStore store, string id) =>
        store.ReadJournal(id).Single(e => e.Event == JournalEventType.Attempt && e.Recipient is not null).Tls ?? "(no TLS)";
}

/// <summary>A zone signed with ldns-signzone, served and validated by unbound on 127.0.0.1:&lt;random&gt; (auth-zone with the zone's key as trust anchor).</summary>
internal sealed class SignedZone : IAsyncDisposable
{
    private readonly Process _unbound;

    private SignedZone(Process unbound, string server)
    {
        _unbound = unbound;
        Server = server;
    }

    /// <summary>The DnsServers entry.</summary>
    public string Server { get; }

    public static async Task<SignedZone> StartAsync(string root, string origin, string records)
    {
        string dir = Path.Combine(root, "zone");
        Directory.CreateDirectory(dir);
        string zone = Path.Combine(dir, origin);
        File.WriteAllText(zone, $"""
            $ORIGIN {origin}.
            $TTL 300
            @ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300
            @ IN NS ns.{origin}.
            ns IN A 127.0.0.1
            {records}

            """);
        string key = (await RunAsync(dir, "ldns-keygen", "-a", "ED25519", "-k", origin)).Trim();
        await RunAsync(dir, "ldns-signzone", "-o", origin + ".", zone, key);
        File.WriteAllLines(Path.Combine(dir, "anchor"), File.ReadAllLines(Path.Combine(dir, key + ".key")).Where(l => l.Contains("DNSKEY")));

        int port = FreeUdpPort();
        string conf = Path.Combine(dir, "unbound.conf");
        File.WriteAllText(conf, $"""
            server:
              interface: 127.0.0.1
              port: {port}
              do-daemonize: no
              username: ""
              chroot: ""
              directory: "{dir}"
              pidfile: ""
              use-syslog: no
              logfile: ""
              do-ip6: no
              access-control: 127.0.0.0/8 allow
              trust-anchor-file: "{Path.Combine(dir, "anchor")}"
              module-config: "validator iterator"
            auth-zone:
              name: "{origin}."
              zonefile: "{zone}.signed"
              for-upstream: yes
              for-downstream: no
              fallback-enabled: no

            """);
        var start = new ProcessStartInfo("timeout") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "120", Peers.Require("unbound"), "-d", "-c", conf }) start.ArgumentList.Add(a);
        var unbound = Process.Start(start)!;
        var server = new SignedZone(unbound, $"127.0.0.1:{port}");
        var client = new LookupClient(new LookupClientOptions(new IPEndPoint(IPAddress.Loopback, port)) { UseCache = false, RequestDnsSecRecords = true, Timeout = TimeSpan.FromMilliseconds(500), Retries = 0 });
        for (int i = 0; i < 100; i++)
        {
            try
            {
                var answer = await client.QueryAsync("ns." + origin, QueryType.A);
                if (answer.Header.IsAuthenticData) return server;
                if (!answer.HasError) throw new InvalidOperationException("unbound answers without validating the signed zone");
            }
            catch (DnsResponseException) { }
            await Task.Delay(100);
        }
        await server.DisposeAsync();
        throw new InvalidOperationException("unbound did not start: " + await unbound.StandardError.ReadToEndAsync());
    }

    private static async Task<string> RunAsync(string dir, string program, params string[] args)
    {
        var start = new ProcessStartInfo(Peers.Require(program)) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        string output = await p.StandardOutput.ReadToEndAsync();
        string error = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{program} failed: {error}");
        return output;
    }

    private static int FreeUdpPort()
    {
        using var probe = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.Client.LocalEndPoint!).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try { if (!_unbound.HasExited) _unbound.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        await _unbound.WaitForExitAsync();
        _unbound.Dispose();
    }
}
