using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using MailKit.Net.Smtp;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MimeKit;

using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// The mail log (docs/logging.md): what <c>mailops serve</c> writes for a message received over
/// SMTP with STARTTLS and AUTH, deferred while its MX is down, then delivered over TLS; and what
/// <c>mailops log</c> finds of it once it has left the queue.
/// </summary>
public class MailLogTests
{
    [PeerTheory("dnsmasq")]
    [InlineData("text")]
    [InlineData("json")]
    public async Task Serve_logs_every_step_and_mailops_log_finds_them_after_the_message_left(string format)
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=log.test,mx.log.test,10", "--host-record=mx.log.test,127.0.0.2");
        string config = Path.Combine(net.Sender.Root, "config.json");
        const string Secret = "never-in-the-log-7f3a";
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
        {
            HostName = "log-sender.test",
            RemotePort = net.Port,
            DnsServers = new[] { $"127.0.0.1:{net.DnsPort}" },
            RetrySchedule = new[] { "1h" },
            DestinationBackoff = "1h",
            InboundAuthentication = "Off",
            LogFormat = format,
            Users = new[] { new { Name = "alice", PasswordHash = PasswordHash.Create(Secret, iterations: 1000), SendAs = new[] { "*" } } },
        }));

        string id;
        string all;
        await using (var serve = await ServeProcess.StartAsync("--config", config, "--queue", net.Sender.QueuePath, "--listen", "127.0.0.1:0"))
        {
            var message = new MimeMessage();
            message.From.Add(MailboxAddress.Parse("alice@log-sender.test"));
            message.To.Add(MailboxAddress.Parse("u@log.test"));
            message.Subject = "logged";
            message.MessageId = "logged-1@log-sender.test";
            message.Body = new TextPart("plain") { Text = "hello" };
            using (var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true, CheckCertificateRevocation = false, LocalDomain = "client.log.test" })
            {
                await client.ConnectAsync("127.0.0.1", serve.Port, MailKit.Security.SecureSocketOptions.StartTls);
                await client.AuthenticateAsync("alice", Secret);
                await client.SendAsync(message);
                await client.DisconnectAsync(true);
            }
            id = await WaitForAsync(() => Lines(serve.Log, format).FirstOrDefault(e => e.Event == "Deferred")?.Id, "a deferral", () => serve.Log);

            var receiver = await net.StartReceiverAsync("127.0.0.2", c => c.Tls = new TlsSettings { Enabled = true });
            var flush = await Programs.RunAsync(Programs.Mailops, ["flush", "--queue", net.Sender.QueuePath, "--wait"], timeout: TimeSpan.FromSeconds(60));
            Assert.True(flush.ExitCode == 0, flush + "\n" + serve.Log);
            Assert.Single(receiver.Messages());
            await WaitForAsync(() => Lines(serve.Log, format).FirstOrDefault(e => e.Event == "Delivered")?.Id, "the delivery", () => serve.Log);
            all = serve.Log;
        }
        Assert.DoesNotContain(Secret, all);
        var lines = Lines(all, format).Where(e => e.Id == id).ToList();

        var received = Assert.Single(lines, e => e.Event == "Received");
        Assert.Equal("alice@log-sender.test", received.Sender);
        Assert.Equal("127.0.0.1", received.Address);
        Assert.Equal("client.log.test", received.Host);
        Assert.Equal("alice", received.User);
        Assert.Matches("^Tls1[23] ", received.Tls);
        Assert.True(received.Size > 100, all);
        Assert.Equal("<logged-1@log-sender.test>", received.MessageId);
        Assert.NotNull(received.BeforeQueue);
        Assert.Contains(lines, e => e.Event == "Queued");

        var attempts = lines.Where(e => e.Event == "Attempt" && e.Recipient == "u@log.test").ToList();
        Assert.Equal(2, attempts.Count);
        var failed = attempts.First();
        Assert.StartsWith("4.4.1", failed.Status);
        var delivered = attempts.Last();
        Assert.Equal("mx.log.test", delivered.Host);
        Assert.Equal($"127.0.0.2:{net.Port}", delivered.Address);
        Assert.StartsWith("250 ", delivered.Status);
        Assert.Matches(@"^Tls1[23] .*\(not verified", delivered.Tls);
        Assert.NotNull(delivered.InQueue);
        Assert.True(delivered.Connect > 0, all);
        Assert.NotNull(delivered.Transmit);
        Assert.True(delivered.InQueue > failed.InQueue, all);
        Assert.Contains(lines, e => e.Event == "Deferred" && e.Recipient == "u@log.test");
        Assert.Contains(lines, e => e.Event == "Delivered" && e.Recipient == "u@log.test" && e.Host == "mx.log.test");

        // After the message left the queue: found by recipient (any case, a wildcard), newest first.
        var found = await Programs.RunAsync(Programs.Mailops, ["log", "--queue", net.Sender.QueuePath, "--recipient", "U@LOG.*", "--json"]);
        Assert.True(found.ExitCode == 0, found.ToString());
        var entries = found.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(entries, e => Assert.Equal(id, e.GetProperty("id").GetString()));
        var kinds = entries.Select(e => e.GetProperty("event").GetString()).ToList();
        Assert.Equal("Delivered", kinds[0]);
        Assert.Equal("Received", kinds[^1]);
        Assert.Equal(2, kinds.Count(k => k == "Attempt"));
        Assert.Contains("Deferred", kinds);
        var times = entries.Select(e => e.GetProperty("time").GetDateTimeOffset()).ToList();
        Assert.Equal(times.OrderByDescending(t => t), times);
        var byEvent = await Programs.RunAsync(Programs.Mailops, ["log", "--queue", net.Sender.QueuePath, "--message-id", "logged-1@log-sender.test", "--event", "delivered"]);
        Assert.Matches($@"{id}: delivered to=<u@log\.test> relay=mx\.log\.test\[127\.0\.0\.2:{net.Port}\]", byEvent.Stdout);
        Assert.Single(byEvent.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var nobody = await Programs.RunAsync(Programs.Mailops, ["log", "--queue", net.Sender.QueuePath, "--sender", "bob@*"]);
        Assert.Equal("", nobody.Stdout);
    }

    /// <summary>What a test needs of a log line, read from either format.</summary>
    private sealed record Line(string Id, string Event, string? Sender, string? Recipient, string? Host, string? Address, string? Tls, string? User,
        long? Size, string? MessageId, string? Status, double? BeforeQueue, double? InQueue, double? Connect, double? Transmit);

    private static IEnumerable<Line> Lines(string log, string format)
    {
        foreach (var text in log.Split('\n'))
        {
            if (format == "json")
            {
                if (!text.StartsWith('{')) continue;
                var e = JsonDocument.Parse(text).RootElement; // every line of a JSON log must parse
                if (!e.TryGetProperty("id", out var id)) continue;
                string? S(string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;
                double? D(string name) => e.TryGetProperty("delays", out var d) && d.TryGetProperty(name, out var v) ? v.GetDouble() : null;
                yield return new Line(id.GetString()!, S("event")!, S("sender"), S("recipient"), S("host"), S("address"), S("tls"), S("user"),
                    e.TryGetProperty("size", out var size) ? size.GetInt64() : null, S("messageId"), S("status"), D("beforeQueue"), D("inQueue"), D("connect"), D("transmit"));
            }
            else
            {
                var m = Regex.Match(text, @"mailops\[300\]: (\S+): (\w+)(.*)$");
                if (!m.Success) continue;
                string rest = m.Groups[3].Value;
                string? V(string key) => Regex.Match(rest, $@" {key}=(""[^""]*""|\S+)") is { Success: true } v ? v.Groups[1].Value.Trim('"') : null;
                string? relay = V(m.Groups[2].Value == "received" ? "client" : "relay");
                var hostAddress = relay is null ? null : Regex.Match(relay, @"^([^\[]+)(?:\[(.*)\])?$");
                var delays = V("delays")?.Split('/').Select(d => d == "-" ? (double?)null : double.Parse(d, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                yield return new Line(m.Groups[1].Value, char.ToUpperInvariant(m.Groups[2].Value[0]) + m.Groups[2].Value[1..],
                    V("from")?.Trim('<', '>'), V("to") is { } to && !to.Contains(',') ? to.Trim('<', '>') : null,
                    hostAddress?.Groups[1].Value, hostAddress is { } ha && ha.Groups[2].Success ? ha.Groups[2].Value : null,
                    V("tls"), V("user"), V("size") is { } n ? long.Parse(n) : null, V("message-id"), V("status"),
                    delays?[0], delays?[1], delays?[2], delays?[3]);
            }
        }
    }

    private static async Task<string> WaitForAsync(Func<string?> probe, string what, Func<string> log)
    {
        for (int i = 0; i < 300; i++)
        {
            if (probe() is { } found) return found;
            await Task.Delay(100);
        }
        throw new Xunit.Sdk.XunitException($"no {what} in the log:\n{log()}");
    }

    [Fact]
    public void A_tail_reads_only_what_was_appended_since_and_follows_the_day_as_it_turns()
    {
        using var q = new TempQueue();
        string logDir = Path.Combine(q.Root, "log");
        Directory.CreateDirectory(logDir);
        var yesterday = new DateTimeOffset(DateTime.UtcNow.Date.AddDays(-1).AddHours(23), TimeSpan.Zero);
        var today = yesterday.AddHours(2);
        MailLogEntry Entry(DateTimeOffset time, string id) => new() { Time = time, Id = id, Event = JournalEventType.Delivered, Recipient = "bob@example.org" };
        MailLog.Append(logDir, [Entry(yesterday, "before")]);

        var tail = MailLog.TailFrom(logDir, yesterday);
        Assert.Empty(tail.ReadNew(yesterday)); // what was there before is not read
        MailLog.Append(logDir, [Entry(yesterday.AddMinutes(1), "late-yesterday"), Entry(today, "today")]);
        string todayFile = Directory.GetFiles(logDir).Order().Last();
        File.AppendAllText(todayFile, "{\"time\":\"2026-"); // a line still being written
        Assert.Equal(["late-yesterday", "today"], tail.ReadNew(today).Select(e => e.Id));
        File.AppendAllText(todayFile, "11-28T10:00:00+00:00\",\"id\":\"finished\",\"event\":\"Deferred\"}\n");
        MailLog.Append(logDir, [Entry(today, "after")]);
        Assert.Equal(["finished", "after"], tail.ReadNew(today).Select(e => e.Id));
        Assert.Empty(tail.ReadNew(today));
    }
}
