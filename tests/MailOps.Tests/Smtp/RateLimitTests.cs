using System.Net;
using MailOps.Core.Config;

namespace MailOps.Tests.Smtp;

/// <summary>Per-client rates (Postfix's anvil): connections, messages and recipients per minute, each client counted apart.</summary>
public sealed class RateLimitTests : ListenerTestBase
{
    private static readonly IPAddress First = IPAddress.Parse("127.0.0.2"), Second = IPAddress.Parse("127.0.0.3");

    /// <summary>The limits count per minute: start well inside one, so that the test does not straddle two.</summary>
    private static async Task InsideOneMinuteAsync()
    {
        int second = DateTime.UtcNow.Second;
        if (second >= 45) await Task.Delay(TimeSpan.FromSeconds(61 - second));
    }

    [Fact]
    public async Task The_21st_connection_in_a_minute_gets_421_and_another_client_is_unaffected()
    {
        var endpoint = Start(c => { c.RateLimits = new RateLimitSettings { ConnectionsPerMinute = 20 }; c.MaxConnectionsPerClient = 100; });
        await InsideOneMinuteAsync();
        for (int i = 0; i < 20; i++)
        {
            using var client = new RawSmtpClient(endpoint, First);
            Assert.StartsWith("220 ", await client.ReplyAsync());
        }
        using (var refused = new RawSmtpClient(endpoint, First))
            Assert.StartsWith("421 4.7.0", await refused.ReplyAsync());
        using var other = new RawSmtpClient(endpoint, Second);
        Assert.StartsWith("220 ", await other.ReplyAsync());
    }

    [Fact]
    public async Task Messages_and_recipients_beyond_their_rates_get_450_and_452()
    {
        var endpoint = Start(c => { c.RateLimits = new RateLimitSettings { MessagesPerMinute = 2, RecipientsPerMinute = 3 }; c.Mailboxes = ["a@self.test", "b@self.test", "c@self.test", "d@self.test"]; });
        await InsideOneMinuteAsync();
        using var client = new RawSmtpClient(endpoint, First);
        Assert.StartsWith("220", await client.ReplyAsync());
        await client.SendAsync("EHLO client.test\r\n");
        Assert.StartsWith("250", await client.ReplyAsync());
        async Task<string> Say(string command)
        {
            await client.SendAsync(command + "\r\n");
            return (await client.ReplyAsync())!;
        }
        Assert.StartsWith("250", await Say("MAIL FROM:<a@far.test>"));
        foreach (var rcpt in new[] { "a", "b", "c" })
            Assert.StartsWith("250", await Say($"RCPT TO:<{rcpt}@self.test>"));
        Assert.StartsWith("452 4.7.1", await Say("RCPT TO:<d@self.test>"));
        Assert.StartsWith("250", await Say("RSET"));
        Assert.StartsWith("250", await Say("MAIL FROM:<a@far.test>"));
        Assert.StartsWith("250", await Say("RSET"));
        Assert.StartsWith("450 4.7.1", await Say("MAIL FROM:<a@far.test>"));

        // Another client still may.
        using var other = new RawSmtpClient(endpoint, Second);
        Assert.StartsWith("220", await other.ReplyAsync());
        await other.SendAsync("EHLO other.test\r\nMAIL FROM:<b@far.test>\r\n");
        Assert.StartsWith("250", await other.ReplyAsync());
        Assert.StartsWith("250", await other.ReplyAsync());
    }
}
