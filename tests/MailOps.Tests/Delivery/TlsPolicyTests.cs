using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// Per-domain outbound TLS policy for MX delivery (TlsPolicies): Require never sends in clear,
/// Verify refuses a certificate that does not verify, May keeps today's opportunistic TLS; the
/// trace says which applied and whether the peer was verified.
/// </summary>
public sealed class TlsPolicyTests
{
    [PeerFact("dnsmasq")]
    public async Task Require_Verify_and_May_per_domain_defer_or_deliver_and_the_trace_names_the_policy()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=tls.test,mx.tls.test,10", "--host-record=mx.tls.test,127.0.0.2",
                                "--mx-host=verify.test,mx.tls.test,10",
                                "--mx-host=clear.test,mx.clear.test,10", "--host-record=mx.clear.test,127.0.0.3",
                                "--mx-host=open.test,mx.clear.test,10");
        // 127.0.0.2 offers STARTTLS with its own self-signed certificate; 127.0.0.3 offers no TLS.
        var withTls = await net.StartReceiverAsync("127.0.0.2", c => { c.Tls = new TlsSettings { Enabled = true }; c.QueuePath = null; });
        var clear = await net.StartReceiverAsync("127.0.0.3");
        var store = net.OpenSenderStore();
        var config = net.SenderConfig(c => c.TlsPolicies = new(StringComparer.OrdinalIgnoreCase)
        {
            ["tls.test"] = "Require", ["verify.test"] = "Verify", ["clear.test"] = "Require",
        });
        string encrypted = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@tls.test"]);
        string unverifiable = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@verify.test"]);
        string noStarttls = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@clear.test"]);
        string opportunistic = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@open.test"]);

        await MailNetwork.PassAsync(config, store);

        Assert.Null(store.ReadEnvelope(encrypted)); // delivered, encrypted, certificate not checked
        var encryptedAttempt = store.ReadJournal(encrypted).Single(e => e.Event == JournalEventType.Attempt && e.Recipient is not null);
        Assert.Contains("not verified, Encrypted", encryptedAttempt.Tls);

        var refused = store.ReadEnvelope(unverifiable)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, refused.State);
        Assert.Equal("4.7.5", refused.Status);

        var stripped = store.ReadEnvelope(noStarttls)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, stripped.State);
        Assert.Equal("4.7.4", stripped.Status);
        Assert.Contains("not sent in clear", stripped.LastError);

        Assert.Null(store.ReadEnvelope(opportunistic)); // no policy: delivered in clear, as before
        Assert.Null(store.ReadJournal(opportunistic).Single(e => e.Event == JournalEventType.Attempt && e.Recipient is not null).Tls);
        Assert.Equal(2, withTls.Messages().Count + clear.Messages().Count); // the encrypted one and the clear one; nothing else got through
    }

    [Fact]
    public void An_unknown_policy_level_is_a_configuration_error()
    {
        var config = new MailOpsConfig { TlsPolicies = new() { ["example.com"] = "Strict" } };
        var ex = Assert.Throws<ConfigException>(() => config.Validate());
        Assert.Contains("TlsPolicies", ex.Message);
    }
}
