using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// The metrics endpoint of <c>mailops serve</c> (docs/logging.md, "Metrics"), scraped with an HTTP
/// client after a known workload: its counts are the workload's and the queue's, and Prometheus'
/// own promtool accepts the output.
/// </summary>
public class MetricsTests
{
    [PeerFact("dnsmasq", "swaks", "promtool")]
    public async Task Scraped_metrics_count_the_workload_and_the_queue_and_pass_promtool()
    {
        await using var net = new MailNetwork();
        // The MX of far.test does not answer: its mail is deferred.
        await net.StartDnsAsync("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.2");
        int smtpPort = MailNetwork.FreePortOnAll(["127.0.0.1"]), metricsPort = MailNetwork.FreePortOnAll(["127.0.0.1"]);
        string config = Path.Combine(net.Sender.Root, "config.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
        {
            HostName = "metrics.test",
            Listen = new[] { $"127.0.0.1:{smtpPort}" },
            Metrics = $"127.0.0.1:{metricsPort}",
            LocalDomains = new[] { "metrics.test" },
            Mailboxes = new[] { "bob@metrics.test" },
            RelayClients = new[] { "127.0.0.0/8" },
            RemotePort = net.Port,
            DnsServers = new[] { $"127.0.0.1:{net.DnsPort}" },
            RetrySchedule = new[] { "1h" },
            InboundAuthentication = "Off",
            MaildirRoot = Path.Combine(net.Sender.Root, "maildir"),
        }));
        await using var serve = await ServeProcess.StartAsync("--config", config, "--queue", net.Sender.QueuePath);
        Assert.Contains($"metrics at http://127.0.0.1:{metricsPort}/metrics", serve.Log);
        // The workload: 4 messages delivered to a Maildir, one message for 2 recipients at a
        // destination that is down, and one RCPT refused (5.1.1): 6 SMTP sessions.
        for (int i = 0; i < 4; i++) await SwaksAsync(smtpPort, "--to", "bob@metrics.test");
        await SwaksAsync(smtpPort, "--to", "a@far.test,b@far.test");
        var refused = await Programs.RunAsync("swaks", ["-s", $"127.0.0.1:{smtpPort}", "--from", "alice@metrics.test", "--to", "nobody@metrics.test", "--silent", "2"]);
        Assert.Contains("550 5.1.1", refused.Stdout + refused.Stderr);

        using var http = new HttpClient();
        string text = "";
        var wanted = new Dictionary<string, double>
        {
            ["mailops_messages_received_total{origin=\"smtp\"}"] = 5,
            ["mailops_recipients_delivered_total{route=\"local\"}"] = 4,
            ["mailops_recipients_deferred_total{route=\"mx\"}"] = 2,
            ["mailops_delivery_latency_seconds_count{route=\"local\"}"] = 4,
            ["mailops_smtp_sessions_total{role=\"mx\"}"] = 6,
            ["mailops_smtp_rejects_total{code=\"550\",command=\"RCPT\",status=\"5.1.1\"}"] = 1,
            ["mailops_queue_messages{state=\"deferred\"}"] = 1,
            ["mailops_queue_messages{state=\"queued\"}"] = 0,
            ["mailops_dns_lookups_total{result=\"ok\",type=\"MX\"}"] = 1,
        };
        Dictionary<string, double> samples = new();
        for (int i = 0; i < 100; i++)
        {
            text = await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics");
            samples = Parse(text);
            if (wanted.All(w => samples.GetValueOrDefault(w.Key) == w.Value)) break;
            await Task.Delay(200);
        }
        foreach (var (name, value) in wanted) Assert.True(samples.GetValueOrDefault(name, double.NaN) == value, $"{name}: want {value}, got {samples.GetValueOrDefault(name, double.NaN)}\n{text}");
        Assert.True(samples["process_resident_memory_bytes"] > 1_000_000, text);
        Assert.True(samples["process_cpu_seconds_total"] > 0, text);

        // The queue gauges agree with the queue as mailops lists it.
        var queue = await Programs.RunAsync(Programs.Mailops, ["queue", "--queue", net.Sender.QueuePath, "--json"]);
        using (var listed = JsonDocument.Parse(queue.Stdout))
        {
            Assert.Equal(samples.Where(s => s.Key.StartsWith("mailops_queue_messages{", StringComparison.Ordinal)).Sum(s => s.Value), listed.RootElement.GetArrayLength());
            Assert.Equal(listed.RootElement.EnumerateArray().Count(m => m.GetProperty("state").GetString() == "Deferred"), samples["mailops_queue_messages{state=\"deferred\"}"]);
        }

        // Prometheus' own checker accepts the exposition (it reports style issues on stdout and
        // format errors with a failing exit code).
        var check = await Programs.RunAsync("promtool", ["check", "metrics"], stdin: text);
        Assert.True(check.ExitCode == 0, check + "\n" + text);
    }

    private static async Task SwaksAsync(int port, params string[] to)
    {
        var sent = await Programs.RunAsync("swaks", ["-s", $"127.0.0.1:{port}", "--from", "alice@metrics.test", .. to, "--silent", "2"]);
        Assert.True(sent.ExitCode == 0, sent.ToString());
    }

    /// <summary>Samples of the Prometheus text format: "name{labels}" (labels as written) to value.</summary>
    private static Dictionary<string, double> Parse(string text)
    {
        var samples = new Dictionary<string, double>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var m = Regex.Match(line, @"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)");
            Assert.True(m.Success, "not a sample line: " + line);
            string labels = m.Groups[2].Value == "{}" ? "" : m.Groups[2].Value;
            samples[m.Groups[1].Value + labels] = double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
        }
        return samples;
    }
}
