using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary><c>mailops serve</c>, <c>flush</c> and <c>mx</c> as processes, against the loopback mail network.</summary>
public class CliDeliveryTests
{
    [PeerFact("dnsmasq")]
    public async Task Serve_defers_while_the_mx_is_down_and_flush_wait_delivers_once_it_is_up()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=cli.test,mx.cli.test,10", "--host-record=mx.cli.test,127.0.0.2");
        string config = Path.Combine(net.Sender.Root, "config.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
        {
            HostName = "cli-sender.test",
            RemotePort = net.Port,
            DnsServers = new[] { $"127.0.0.1:{net.DnsPort}" },
            RetrySchedule = new[] { "1h" },
            DestinationBackoff = "1h",
        }));

        var mx = await Programs.RunAsync(Programs.Mailops, ["mx", "cli.test", "--dns", $"127.0.0.1:{net.DnsPort}", "--json"]);
        Assert.True(mx.ExitCode == 0, mx.ToString());
        using (var route = JsonDocument.Parse(mx.Stdout))
        {
            Assert.Equal("Remote", route.RootElement.GetProperty("kind").GetString());
            var host = route.RootElement.GetProperty("hosts")[0];
            Assert.Equal("mx.cli.test", host.GetProperty("name").GetString());
            Assert.Equal("127.0.0.2", host.GetProperty("addresses")[0].GetString());
        }
        var nx = await Programs.RunAsync(Programs.Mailops, ["mx", "nowhere.test", "--dns", $"127.0.0.1:{net.DnsPort}"]);
        Assert.Equal(1, nx.ExitCode);
        Assert.Contains("5.1.2", nx.Stdout);

        var log = new List<string>();
        var serving = new TaskCompletionSource();
        var deferred = new TaskCompletionSource();
        using var serve = Process.Start(Programs.StartInfo(Programs.Mailops, ["serve", "--config", config, "--queue", net.Sender.QueuePath, "--listen", "127.0.0.1:0"]))!;
        serve.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.Add(e.Data);
            if (e.Data.Contains("serving on")) serving.TrySetResult();
            if (e.Data.Contains("is down")) deferred.TrySetResult();
        };
        serve.BeginErrorReadLine();
        string Log() { lock (log) return string.Join('\n', log); }
        try
        {
            Assert.True(await Task.WhenAny(serving.Task, Task.Delay(30_000)) == serving.Task, "serve did not start:\n" + Log());
            var submit = await Programs.RunAsync(Programs.Mailops, ["submit", "--create", "--queue", net.Sender.QueuePath, "-f", "s@cli-sender.test", "u@cli.test"],
                "Subject: via cli\n\nhello\n");
            Assert.Equal(0, submit.ExitCode);
            string id = submit.Stdout.Trim();
            Assert.True(await Task.WhenAny(deferred.Task, Task.Delay(20_000)) == deferred.Task, "no deferral:\n" + Log());

            var queue = await Programs.RunAsync(Programs.Mailops, ["queue", "--queue", net.Sender.QueuePath, "--json"]);
            using (var listed = JsonDocument.Parse(queue.Stdout))
            {
                var message = listed.RootElement[0];
                Assert.Equal("Deferred", message.GetProperty("state").GetString());
                Assert.Contains("4.4.1", message.GetProperty("lastError").GetString());
            }

            var receiver = await net.StartReceiverAsync("127.0.0.2");
            var flush = await Programs.RunAsync(Programs.Mailops, ["flush", "--queue", net.Sender.QueuePath, "--wait", "--json"], timeout: TimeSpan.FromSeconds(60));
            Assert.True(flush.ExitCode == 0, flush + "\n" + Log());
            using (var results = JsonDocument.Parse(flush.Stdout))
            {
                var result = results.RootElement[0];
                Assert.Equal(id, result.GetProperty("id").GetString());
                Assert.Equal("Delivered", result.GetProperty("outcome").GetString());
                Assert.Equal("mx.cli.test", result.GetProperty("host").GetString());
            }
            Assert.Single(receiver.Messages());
            var trace = await Programs.RunAsync(Programs.Mailops, ["trace", id, "--queue", net.Sender.QueuePath]);
            Assert.Matches(new Regex(@"Delivered\s+<u@cli\.test>\s+mx\.cli\.test"), trace.Stdout);
        }
        finally
        {
            Process.Start("kill", ["-TERM", serve.Id.ToString()])!.WaitForExit();
            Assert.True(serve.WaitForExit(30_000), "serve did not stop:\n" + Log());
        }
    }

    [PeerFact("dnsmasq")]
    public async Task Flush_without_a_server_runs_one_pass_and_reports_each_recipient()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=once.test,mx.once.test,10", "--host-record=mx.once.test,127.0.0.3", "--mx-host=void.test,.,0");
        var receiver = await net.StartReceiverAsync("127.0.0.3");
        string config = Path.Combine(net.Sender.Root, "config.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new { RemotePort = net.Port, DnsServers = new[] { $"127.0.0.1:{net.DnsPort}" } }));
        var submit = await Programs.RunAsync(Programs.Mailops, ["submit", "--create", "--queue", net.Sender.QueuePath, "-f", "s@x.test", "a@once.test", "b@void.test"], "Subject: once\n\nx\n");
        Assert.Equal(0, submit.ExitCode);

        var flush = await Programs.RunAsync(Programs.Mailops, ["flush", "--queue", net.Sender.QueuePath, "--config", config]);

        Assert.True(flush.ExitCode == 1, flush.ToString()); // one bounced, none left waiting
        Assert.Matches(new Regex(@"Delivered\s+<a@once\.test>\s+mx\.once\.test"), flush.Stdout);
        Assert.Matches(new Regex(@"Bounced\s+<b@void\.test>\s+5\.1\.10"), flush.Stdout);
        Assert.Single(receiver.Messages());
    }
}
