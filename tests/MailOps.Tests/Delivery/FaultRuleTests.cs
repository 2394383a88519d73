using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Smtp;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>Fault rules of a test server (docs/testing.md), as a sending MailOps meets them.</summary>
public class FaultRuleTests
{
    [PeerFact("dnsmasq")]
    public async Task A_connection_dropped_at_MAIL_by_the_first_MX_is_retried_at_the_next_one_in_the_same_attempt()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=drop.test,mx1.drop.test,10", "--mx-host=drop.test,mx2.drop.test,20",
            "--host-record=mx1.drop.test,127.0.0.2", "--host-record=mx2.drop.test,127.0.0.3");
        // The rules as a configuration file gives them.
        string file = Path.Combine(net.Sender.Root, "rules.json");
        File.WriteAllText(file, """{ "Rules": [ { "Stage": "Mail", "Sender": "*@sender.test", "Drop": true, "Delay": "100ms" } ] }""");
        var rules = MailOpsConfig.Load(file, required: true).Rules;
        var mx1 = await net.StartReceiverAsync("127.0.0.2", c => c.Rules = rules);
        var mx2 = await net.StartReceiverAsync("127.0.0.3");
        var store = net.OpenSenderStore();
        string id = await MailNetwork.EnqueueAsync(store, "a@sender.test", ["rcpt@drop.test"]);

        await MailNetwork.PassAsync(net.SenderConfig(), store);

        Assert.Null(store.ReadEnvelope(id));
        Assert.Empty(mx1.Messages());
        Assert.Single(mx2.Messages());
        var attempts = store.ReadJournal(id).Where(e => e.Event == JournalEventType.Attempt).ToList();
        Assert.Equal(["mx1.drop.test", "mx2.drop.test"], attempts.Select(a => a.Host ?? "").ToArray());
        Assert.Equal("4.4.2", attempts[0].Status);
        Assert.Contains("connection lost", attempts[0].Detail);
        Assert.StartsWith("250", attempts[1].Status);
    }

    [Theory]
    [InlineData("""{ "Stage": "Quit", "Reply": "550 no" }""", "Stage 'Quit'")]
    [InlineData("""{ "Stage": "Rcpt", "Reply": "hello" }""", "not one SMTP reply line")]
    [InlineData("""{ "Stage": "Rcpt", "Reply": "550 no", "Drop": true }""", "not both")]
    [InlineData("""{ "Stage": "Helo", "Recipient": "a@b" , "Reply": "550 no" }""", "Recipient can only")]
    [InlineData("""{ "Stage": "Rcpt" }""", "needs a Reply, Drop or a Delay")]
    [InlineData("""{ "Stage": "Rcpt", "Reply": "550 no", "Times": 0 }""", "Times must be positive")]
    public void A_rule_that_cannot_work_is_refused_with_the_reason(string rule, string reason)
    {
        using var q = new TempQueue();
        string file = Path.Combine(q.Root, "config.json");
        File.WriteAllText(file, $$"""{ "Rules": [ {{rule}} ] }""");
        var ex = Assert.Throws<ConfigException>(() => MailOpsConfig.Load(file, required: true));
        Assert.Contains("Rules[0]", ex.Message);
        Assert.Contains(reason, ex.Message);
    }
}
