using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using MailOps.Tests.Delivery;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Cli;

/// <summary>
/// SIGHUP to <c>mailops serve</c> (docs/configuration.md, "Reloading"): a new listener and a new
/// mailbox work without a restart, a session opened before the reload keeps its settings, a
/// listener taken out stops accepting, and a broken configuration is refused while the old one
/// goes on serving.
/// </summary>
public class ReloadTests
{
    [Fact]
    public async Task Sighup_applies_a_new_listener_and_mailbox_and_refuses_a_broken_configuration()
    {
        using var queue = new TempQueue();
        int first = MailNetwork.FreePortOnAll(["127.0.0.1"]), second = MailNetwork.FreePortOnAll(["127.0.0.1"]);
        while (second == first) second = MailNetwork.FreePortOnAll(["127.0.0.1"]);
        string config = Path.Combine(queue.Root, "config.json"), maildir = Path.Combine(queue.Root, "maildir");
        async Task WriteConfig(int[] ports, string[] mailboxes) => await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
        {
            HostName = "reload.test",
            Listen = ports.Select(p => $"127.0.0.1:{p}").ToArray(),
            LocalDomains = new[] { "reload.test" },
            Mailboxes = mailboxes,
            MaildirRoot = maildir,
            InboundAuthentication = "Off",
            Tls = new { Enabled = false },
        }));
        await WriteConfig([first], ["bob@reload.test"]);

        await using var serve = await ServeProcess.StartAsync("--config", config, "--queue", queue.QueuePath);
        async Task HangUpAsync(string expect)
        {
            int before = serve.Count(expect);
            serve.Signal("HUP");
            await serve.WaitForAsync(expect, before + 1);
        }
        var one = new IPEndPoint(IPAddress.Loopback, first);
        var two = new IPEndPoint(IPAddress.Loopback, second);
        Assert.StartsWith("250", await RawSmtpClient.SendMessageAsync(one, "client.test", "a@client.test", "bob@reload.test", "Subject: 1\r\n\r\nhi\r\n"));
        Assert.StartsWith("550 5.1.1", await RcptAsync(one, "carol@reload.test"));
        Assert.Throws<SocketException>(() => new TcpClient().Connect(two));

        // A session opened before the reload keeps the settings it started with.
        using var early = new RawSmtpClient(one);
        await early.ReplyAsync();
        await early.SendAsync("EHLO early.test\r\n");
        await early.ReplyAsync();

        await WriteConfig([first, second], ["bob@reload.test", "carol@reload.test"]);
        await HangUpAsync("configuration reloaded");
        Assert.Contains($"(new: 127.0.0.1:{second})", serve.Log);
        Assert.StartsWith("250", await RawSmtpClient.SendMessageAsync(two, "client.test", "a@client.test", "carol@reload.test", "Subject: 2\r\n\r\nhi\r\n"));
        Assert.StartsWith("250", await RcptAsync(one, "carol@reload.test"));
        await early.SendAsync("MAIL FROM:<a@client.test>\r\nRCPT TO:<carol@reload.test>\r\n");
        Assert.StartsWith("250", await early.ReplyAsync());
        Assert.StartsWith("550 5.1.1", await early.ReplyAsync());
        await WaitForMaildirAsync(Path.Combine(maildir, "reload.test", "carol", "new"));

        // A broken configuration changes nothing.
        await File.WriteAllTextAsync(config, "{ \"Listen\": [\"not an endpoint\"] }");
        await HangUpAsync("reload refused");
        Assert.StartsWith("250", await RawSmtpClient.SendMessageAsync(two, "client.test", "a@client.test", "carol@reload.test", "Subject: 3\r\n\r\nhi\r\n"));
        Assert.StartsWith("250", await RcptAsync(one, "bob@reload.test"));

        // A listener taken out of the configuration stops accepting.
        await WriteConfig([second], ["bob@reload.test", "carol@reload.test"]);
        await HangUpAsync("configuration reloaded");
        Assert.Contains($"(closed: 127.0.0.1:{first})", serve.Log);
        Assert.Throws<SocketException>(() => new TcpClient().Connect(one));
        Assert.StartsWith("250", await RcptAsync(two, "bob@reload.test"));
    }

    /// <summary>The reply to RCPT TO in a fresh session.</summary>
    private static async Task<string?> RcptAsync(IPEndPoint endpoint, string recipient)
    {
        using var client = new RawSmtpClient(endpoint);
        await client.ReplyAsync();
        await client.SendAsync($"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<{recipient}>\r\n");
        await client.ReplyAsync();
        await client.ReplyAsync();
        return await client.ReplyAsync();
    }

    private static async Task WaitForMaildirAsync(string folder)
    {
        for (int i = 0; i < 200; i++)
        {
            if (Directory.Exists(folder) && Directory.GetFiles(folder).Length > 0) return;
            await Task.Delay(50);
        }
        Assert.Fail($"nothing delivered to {folder}");
    }
}
