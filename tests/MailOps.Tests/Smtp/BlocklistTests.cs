using System.Net;
using MailOps.Core.Config;
using MailOps.Tests.Delivery;

namespace MailOps.Tests.Smtp;

/// <summary>DNS blocklists served by dnsmasq (weights and a threshold, refused before the greeting), and greylisting.</summary>
public sealed class BlocklistTests : ListenerTestBase
{
    private static readonly IPAddress Listed = IPAddress.Parse("127.0.0.2"), Clean = IPAddress.Parse("127.0.0.3"), Light = IPAddress.Parse("127.0.0.4");

    private static DnsblSettings Zones() => new()
    {
        Zones = new(StringComparer.OrdinalIgnoreCase) { ["bl.test"] = 2, ["weak.test"] = 1 },
        Threshold = 2,
    };

    private static async Task<string?> GreetingAsync(IPEndPoint endpoint, IPAddress from)
    {
        using var client = new RawSmtpClient(endpoint, from);
        return await client.ReplyAsync();
    }

    [PeerFact("dnsmasq")]
    public async Task A_listed_client_gets_554_naming_the_zone_and_others_are_greeted()
    {
        await using var net = new MailNetwork();
        // 127.0.0.2 is in bl.test (weight 2: refused); 127.0.0.4 only in weak.test (weight 1: below the threshold).
        await net.StartDnsAsync("--host-record=2.0.0.127.bl.test,127.0.0.2", "--host-record=4.0.0.127.weak.test,127.0.0.2");
        var endpoint = Start(c => { c.DnsServers = [$"127.0.0.1:{net.DnsPort}"]; c.Dnsbl = Zones(); });
        var refused = await GreetingAsync(endpoint, Listed);
        Assert.StartsWith("554 5.7.1", refused);
        Assert.Contains("bl.test", refused);
        Assert.StartsWith("220 ", await GreetingAsync(endpoint, Clean));
        Assert.StartsWith("220 ", await GreetingAsync(endpoint, Light));
    }

    [Fact]
    public async Task With_the_DNS_server_gone_mail_still_flows()
    {
        var endpoint = Start(c => { c.DnsServers = ["127.0.0.1:9"]; c.Dnsbl = Zones(); });
        using var client = new RawSmtpClient(endpoint, Listed);
        Assert.StartsWith("220 ", await client.ReplyAsync());
        await client.SendAsync("EHLO c.test\r\nMAIL FROM:<a@far.test>\r\nRCPT TO:<alice@self.test>\r\n");
        Assert.StartsWith("250", await client.ReplyAsync());
        Assert.StartsWith("250", await client.ReplyAsync());
        Assert.StartsWith("250", await client.ReplyAsync());
    }

    [Fact]
    public async Task Greylisting_defers_a_new_triplet_lets_its_retry_through_and_then_allows_the_client()
    {
        var endpoint = Start(c => c.Greylisting = new GreylistSettings { Enabled = true, Delay = TimeSpan.FromSeconds(1), AutoAllowAfter = 1 });
        async Task<string> RcptAsync(string recipient)
        {
            using var client = new RawSmtpClient(endpoint, Listed);
            await client.ReplyAsync();
            await client.SendAsync($"EHLO c.test\r\nMAIL FROM:<a@far.test>\r\nRCPT TO:<{recipient}>\r\n");
            await client.ReplyAsync();
            await client.ReplyAsync();
            return (await client.ReplyAsync())!;
        }
        Assert.StartsWith("450 4.7.1", await RcptAsync("alice@self.test"));
        Assert.StartsWith("450 4.7.1", await RcptAsync("alice@self.test")); // too soon
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        Assert.StartsWith("250", await RcptAsync("alice@self.test"));
        Assert.StartsWith("250", await RcptAsync("bob@self.test")); // the client passed once: allowed from now on
    }
}
