using System.Text;
using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Local;
using MailOps.Core.Queue;

namespace MailOps.Tests.Delivery;

/// <summary>Local Maildir delivery, address resolution and the retry schedule: no network needed.</summary>
public class LocalAndPolicyTests
{
    private static MailOpsConfig LocalConfig(string maildir) => new()
    {
        HostName = "here.test",
        LocalDomains = ["here.test"],
        VirtualDomains = new(StringComparer.OrdinalIgnoreCase) { ["virt.test"] = "shared" },
        Mailboxes = ["alice@here.test", "bob@here.test", "carol@virt.test"],
        Aliases = new(StringComparer.OrdinalIgnoreCase)
        {
            ["team@here.test"] = ["alice@here.test", "bob@here.test", "ext@far.test"],
            ["loop1@here.test"] = ["loop2@here.test"],
            ["loop2@here.test"] = ["loop1@here.test", "alice@here.test"],
        },
        MaildirRoot = maildir,
        DnsServers = ["127.0.0.1:9"],
        Tls = new TlsSettings { Enabled = false },
    };

    private static string[] NewMail(string maildir, string mailbox) =>
        Directory.Exists(Path.Combine(maildir, mailbox, "new")) ? Directory.GetFiles(Path.Combine(maildir, mailbox, "new")) : [];

    [Fact]
    public async Task Local_mail_lands_in_maildirs_with_delivered_to_user_ext_aliases_and_virtual_domains()
    {
        using var temp = new TempQueue();
        string maildir = Path.Combine(temp.Root, "maildir");
        var config = LocalConfig(maildir);
        using var store = temp.Open();
        string body = "Subject: local\r\nMessage-ID: <local@test>\r\n\r\n.dot\r\nGrüße\r\n";
        string id = await MailNetwork.EnqueueAsync(store, "s@sender.example", ["alice-news@here.test", "team@here.test", "carol@virt.test", "loop1@here.test"], body);

        await MailNetwork.PassAsync(config, store);

        // alice: as alice-news (user-ext), via the team alias, and via the loop1 -> loop2 alias (the loop is cut).
        var alice = NewMail(maildir, "here.test/alice");
        Assert.Equal(3, alice.Length);
        var texts = alice.Select(File.ReadAllText).ToList();
        Assert.Contains(texts, t => t.StartsWith("Return-Path: <s@sender.example>\nDelivered-To: alice-news@here.test\n", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.Contains("Delivered-To: alice@here.test\n", StringComparison.Ordinal));
        Assert.All(texts, t => Assert.EndsWith("Subject: local\nMessage-ID: <local@test>\n\n.dot\nGrüße\n", t));
        Assert.Single(NewMail(maildir, "here.test/bob"));
        Assert.Single(NewMail(maildir, "shared/carol")); // virt.test's mailboxes live under "shared"
        Assert.Empty(Directory.GetFiles(Path.Combine(maildir, "here.test/alice/tmp")));

        // ext@far.test was forwarded as a new message with the same sender and body.
        var forward = Assert.Single(store.List());
        Assert.Equal("s@sender.example", forward.Sender);
        Assert.Equal(["ext@far.test"], forward.GetRecipients());
        Assert.Null(store.ReadEnvelope(id));
        Assert.Equal(4, store.ReadJournal(id).Count(e => e.Event == JournalEventType.Delivered));
    }

    [Fact]
    public async Task A_message_already_delivered_to_the_mailbox_is_a_loop_and_bounces()
    {
        using var temp = new TempQueue();
        string maildir = Path.Combine(temp.Root, "maildir");
        using var store = temp.Open();
        string id = await MailNetwork.EnqueueAsync(store, "s@sender.example", ["bob@here.test"],
            "Delivered-To: bob@here.test\r\nSubject: again\r\n\r\nbody\r\n");

        await MailNetwork.PassAsync(LocalConfig(maildir), store);

        Assert.Empty(NewMail(maildir, "here.test/bob"));
        var bounced = Assert.Single(store.ReadJournal(id), e => e.Event == JournalEventType.Bounced && e.Recipient is not null);
        Assert.Equal("5.4.6", bounced.Status);
        Assert.Equal("<>", Assert.Single(store.List()).Sender); // the DSN
    }

    [Fact]
    public async Task A_bounce_is_never_bounced_and_held_mail_is_not_delivered()
    {
        using var temp = new TempQueue();
        string maildir = Path.Combine(temp.Root, "maildir");
        using var store = temp.Open();
        // A bounce (sender <>) to a mailbox that loops: it fails, and no report is made about it.
        string bounce = await MailNetwork.EnqueueAsync(store, "", ["bob@here.test"], "Delivered-To: bob@here.test\r\nSubject: bounce\r\n\r\nx\r\n");
        string held = await MailNetwork.EnqueueAsync(store, "s@sender.example", ["alice@here.test"]);
        await store.HoldAsync(held);

        await MailNetwork.PassAsync(LocalConfig(maildir), store);

        Assert.Null(store.ReadEnvelope(bounce));
        Assert.Contains(store.ReadJournal(bounce), e => e.Detail?.Contains("never bounce a bounce") == true);
        var left = Assert.Single(store.List());
        Assert.Equal(held, left.Id);
        Assert.Equal(MessageState.Held, left.Kind);
        Assert.Empty(NewMail(maildir, "here.test/alice"));
    }

    [Fact]
    public void Resolve_refuses_names_that_would_leave_the_maildir_root()
    {
        var config = LocalConfig("/tmp/none");
        config.Mailboxes.Add("*@here.test");
        var mailboxes = new LocalMailboxes(config);
        Assert.NotNull(mailboxes.Resolve("..@here.test").Error);
        Assert.NotNull(mailboxes.Resolve(".hidden@here.test").Error);
        Assert.Equal(Path.Combine("here.test", "dave"), Assert.Single(mailboxes.Resolve("Dave@here.test").Mailboxes).RelativePath);
    }

    [Fact]
    public void Retry_schedule_is_qmails_quadratic_by_default_and_never_passes_the_lifetime()
    {
        var arrived = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var policy = new RetryPolicy(null, TimeSpan.FromDays(5));
        Assert.Equal(arrived.AddSeconds(400), policy.NextAttempt(arrived, 1, arrived.AddSeconds(1)));
        Assert.Equal(arrived.AddSeconds(1600), policy.NextAttempt(arrived, 2, arrived.AddSeconds(401)));
        Assert.Equal(arrived.AddSeconds(3600), policy.NextAttempt(arrived, 3, arrived.AddSeconds(1601)));
        // Late (the server was down): the spacing is kept from now.
        var late = arrived.AddHours(10);
        Assert.Equal(late.AddSeconds(400 * 9 - 400 * 4), policy.NextAttempt(arrived, 3, late));
        // Never past the deadline; at or after it, give up.
        Assert.Equal(arrived.AddDays(5), policy.NextAttempt(arrived, 40, arrived.AddDays(4.99)));
        Assert.Null(policy.NextAttempt(arrived, 41, arrived.AddDays(5)));

        var configured = new RetryPolicy([TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(10)], TimeSpan.FromDays(1));
        var now = arrived.AddMinutes(3);
        Assert.Equal(now.AddMinutes(1), configured.NextAttempt(arrived, 1, now));
        Assert.Equal(now.AddMinutes(10), configured.NextAttempt(arrived, 2, now));
        Assert.Equal(now.AddMinutes(10), configured.NextAttempt(arrived, 7, now));
    }

    [Fact]
    public void Configuration_rejects_bad_delivery_settings()
    {
        Assert.Throws<ConfigException>(() => new MailOpsConfig { RetrySchedule = ["soon"] }.Validate());
        Assert.Throws<ConfigException>(() => new MailOpsConfig { DnsServers = ["dns.example:53"] }.Validate());
        Assert.Throws<ConfigException>(() => new MailOpsConfig { SmartHost = "relay.example:99999" }.Validate());
        Assert.Throws<ConfigException>(() => new MailOpsConfig { ConcurrencyPerDomain = 5, ConcurrencyPerDomainMax = 2 }.Validate());
        new MailOpsConfig { DnsServers = ["127.0.0.1:5353", "[::1]:53", "10.0.0.2"], SmartHost = "[relay.example]:587", RetrySchedule = ["1m", "10m"] }.Validate();
    }
}
