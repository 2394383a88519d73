using System.Net;
using System.Text;
using MailOps.Core.Delivery;
using MailOps.Core.Delivery.Remote;
using MailOps.Core.Queue;
using MailOps.Core.Smtp;
using MailOps.Tests.Smtp;
using MimeKit;

namespace MailOps.Tests.Delivery;

/// <summary>
/// The delivery engine against a real loopback network (docs/delivery.md): dnsmasq for MX records,
/// smtp-sink, MailOps listeners and scripted greeters as receivers.
/// </summary>
public class DeliveryTests
{
    private static Envelope? Env(QueueStore store, string id) => store.ReadEnvelope(id);

    private static List<JournalEvent> Journal(QueueStore store, string id, JournalEventType type) =>
        store.ReadJournal(id).Where(e => e.Event == type).ToList();

    [PeerFact("dnsmasq")]
    public async Task Mx_order_falls_back_past_a_refused_connection_and_a_4xx_greeting()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync(
            "--mx-host=order.test,mx1.order.test,10", "--mx-host=order.test,mx2.order.test,20", "--mx-host=order.test,mx3.order.test,30",
            "--host-record=mx1.order.test,127.0.0.2", "--host-record=mx2.order.test,127.0.0.3", "--host-record=mx3.order.test,127.0.0.4");
        // mx1: nothing listens. mx2: greets 421. mx3: a MailOps listener.
        var busy = net.StartGreeter("127.0.0.3", "421 4.3.2 busy, try later");
        var mx3 = await net.StartReceiverAsync("127.0.0.4");
        var store = net.OpenSenderStore();
        var config = net.SenderConfig();
        string id = await MailNetwork.EnqueueAsync(store, "a@sender.test", ["rcpt@order.test"]);

        await MailNetwork.PassAsync(config, store);

        Assert.Null(Env(store, id)); // delivered: gone from the queue
        Assert.Single(mx3.Messages());
        Assert.Equal(1, busy.Connections);
        var attempts = Journal(store, id, JournalEventType.Attempt);
        Assert.Equal(["mx1.order.test", "mx2.order.test", "mx3.order.test"], attempts.Select(a => a.Host ?? "").ToArray());
        Assert.Contains("refused", attempts[0].Detail, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("421", attempts[1].Status);
        Assert.StartsWith("250", attempts[2].Status);
        Assert.Equal($"127.0.0.4:{net.Port}", attempts[2].Address);
        Assert.Single(Journal(store, id, JournalEventType.Delivered));
    }

    [PeerFact("dnsmasq")]
    public async Task Routing_implicit_mx_null_mx_nxdomain_servfail_and_equal_preferences()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync(
            "--host-record=implicit.test,127.0.0.2",
            "--mx-host=null.test,.,0",
            "--mx-host=eq.test,a.eq.test,10", "--mx-host=eq.test,b.eq.test,10", "--mx-host=eq.test,c.eq.test,5",
            "--host-record=a.eq.test,127.0.0.2", "--host-record=b.eq.test,127.0.0.3", "--host-record=c.eq.test,127.0.0.4",
            "--server=/broken.test/127.0.0.1#1");
        var router = new MxRouter(net.SenderConfig(), MailOps.Core.Dns.DnsEndpoint.CreateClient([$"127.0.0.1:{net.DnsPort}"]));

        var implicitMx = await router.RouteAsync("implicit.test");
        Assert.Equal(RouteKind.Remote, implicitMx.Kind);
        Assert.Equal("implicit-mx", implicitMx.Source);
        Assert.Equal(IPAddress.Parse("127.0.0.2"), Assert.Single(implicitMx.Hosts).Addresses.Single());

        var nullMx = await router.RouteAsync("null.test");
        Assert.Equal((RouteKind.Bounce, "5.1.10"), (nullMx.Kind, nullMx.Status));

        var nx = await router.RouteAsync("nonexistent.test");
        Assert.Equal((RouteKind.Bounce, "5.1.2"), (nx.Kind, nx.Status));

        var servfail = await router.RouteAsync("x.broken.test");
        Assert.Equal(RouteKind.Defer, servfail.Kind);
        Assert.Equal("4.4.3", servfail.Status);

        // Preference 5 first, then the two 10s in both orders over enough tries.
        var orders = new HashSet<string>();
        for (int i = 0; i < 40; i++)
        {
            var route = await router.RouteAsync("eq.test");
            Assert.Equal("c.eq.test", route.Hosts[0].Name);
            orders.Add(string.Join(",", route.Hosts.Skip(1).Select(h => h.Name)));
        }
        Assert.Equal(2, orders.Count);
    }

    [PeerFact("dnsmasq", "smtp-sink")]
    public async Task Smtp_sink_answering_4xx_5xx_or_hanging_up_gives_deferred_bounced_and_next_host()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync(
            "--mx-host=soft.test,mx.soft.test,10", "--host-record=mx.soft.test,127.0.0.2",
            "--mx-host=hard.test,mx.hard.test,10", "--host-record=mx.hard.test,127.0.0.3",
            "--mx-host=drop.test,mx1.drop.test,10", "--host-record=mx1.drop.test,127.0.0.4",
            "--mx-host=drop.test,mx2.drop.test,20", "--host-record=mx2.drop.test,127.0.0.5");
        net.StartSink("127.0.0.2", "-r", "rcpt");   // 4xx to every RCPT
        net.StartSink("127.0.0.3", "-f", "data");   // 5xx to DATA
        net.StartSink("127.0.0.4", "-q", "mail");   // hangs up at MAIL, before any reply
        var good = net.StartSink("127.0.0.5");
        var store = net.OpenSenderStore();
        string soft = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@soft.test"]);
        string hard = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@hard.test"]);
        string drop = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@drop.test"]);

        await MailNetwork.PassAsync(net.SenderConfig(), store, [soft, hard, drop]);

        var deferred = Env(store, soft)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, deferred.State);
        Assert.StartsWith("4", deferred.LastReply);
        var bounced = Assert.Single(Journal(store, hard, JournalEventType.Bounced), e => e.Recipient is not null);
        Assert.StartsWith("5", bounced.Status);
        Assert.Null(Env(store, drop)); // mx1 hung up before answering MAIL: mx2 took it
        Assert.Equal("mx2.drop.test", Assert.Single(Journal(store, drop, JournalEventType.Delivered)).Host);
        await WaitForAsync(() => good.Counters().Messages == 1);
    }

    [PeerFact("dnsmasq", "smtp-sink")]
    public async Task Hold_and_remove_while_a_delivery_is_in_flight_are_safe_and_traced()
    {
        await using var net = new MailNetwork();
        // Two domains (two destinations, so both deliveries run at once) on one slow host.
        await net.StartDnsAsync("--mx-host=slow.test,mx.slow.test,10", "--mx-host=slow2.test,mx.slow.test,10", "--host-record=mx.slow.test,127.0.0.2");
        var sink = net.StartSink("127.0.0.2", "-w", "2"); // answers DATA after 2 s
        var store = net.OpenSenderStore();
        string removed = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["a@slow.test"]);
        string held = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["b@slow2.test"]);

        var pass = MailNetwork.PassAsync(net.SenderConfig(), store);
        await WaitForAsync(() => store.Find(removed)?.Kind == MessageState.Active && store.Find(held)?.Kind == MessageState.Active);
        await store.RemoveAsync(removed, "removed by the test");
        await store.HoldAsync(held);
        await pass;

        // The removed message stays removed; its attempt is in the trace, marked as dropped.
        Assert.Null(store.Find(removed));
        var journal = store.ReadJournal(removed);
        Assert.Contains(journal, e => e.Event == JournalEventType.Removed);
        Assert.Contains(journal, e => e.Event == JournalEventType.Attempt && e.Detail!.Contains("result dropped"));
        // The held one was delivered while held: delivery is a fact, so it is recorded and leaves.
        Assert.Null(store.Find(held));
        Assert.Equal([JournalEventType.Held, JournalEventType.Delivered],
            store.ReadJournal(held).Where(e => e.Event is JournalEventType.Held or JournalEventType.Delivered).Select(e => e.Event).ToArray());
        await WaitForAsync(() => sink.Counters().Messages == 2);
    }

    [PeerFact("dnsmasq")]
    public async Task Mail_never_loops_back_to_this_server()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync(
            "--mx-host=loop.test,me.loop.test,10", "--host-record=me.loop.test,127.0.0.5",
            "--mx-host=backup.test,primary.backup.test,10", "--mx-host=backup.test,me.loop.test,20", "--mx-host=backup.test,tertiary.backup.test,30",
            "--host-record=primary.backup.test,127.0.0.2", "--host-record=tertiary.backup.test,127.0.0.3");
        var self = new[] { new IPEndPoint(IPAddress.Parse("127.0.0.5"), net.Port) };
        var router = new MxRouter(net.SenderConfig(), MailOps.Core.Dns.DnsEndpoint.CreateClient([$"127.0.0.1:{net.DnsPort}"]), () => self);

        var loop = await router.RouteAsync("loop.test");
        Assert.Equal((RouteKind.Bounce, "5.4.6"), (loop.Kind, loop.Status));

        var backup = await router.RouteAsync("backup.test");
        Assert.Equal(RouteKind.Remote, backup.Kind);
        Assert.Equal(["primary.backup.test"], backup.Hosts.Select(h => h.Name).ToArray());

        var byName = new MxRouter(net.SenderConfig(c => c.HostName = "me.loop.test"), MailOps.Core.Dns.DnsEndpoint.CreateClient([$"127.0.0.1:{net.DnsPort}"]));
        Assert.Equal("5.4.6", (await byName.RouteAsync("loop.test")).Status);
    }

    [PeerFact("dnsmasq")]
    public async Task A_5xx_for_one_of_three_recipients_bounces_only_that_one_with_a_dsn()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=three.test,mx.three.test,10", "--host-record=mx.three.test,127.0.0.2");
        var mx = await net.StartReceiverAsync("127.0.0.2", c =>
        {
            c.LocalDomains = ["three.test"];
            c.Mailboxes = ["a@three.test", "b@three.test"];
        });
        var store = net.OpenSenderStore();
        string id = await MailNetwork.EnqueueAsync(store, "sender@sender.test", ["a@three.test", "nobody@three.test", "b@three.test"]);

        await MailNetwork.PassAsync(net.SenderConfig(), store, [id]);

        var all = mx.Messages();
        Assert.True(all.Count == 1, string.Join("\n----\n", all.Select(m => string.Join(",", m.Envelope.Recipients.Select(r => r.Address)) + "\n" + m.Body)));
        var received = all[0];
        Assert.Equal(["a@three.test", "b@three.test"], received.Envelope.Recipients.Select(r => r.Address).ToArray());
        Assert.True(Env(store, id) is null, string.Join("\n", store.List().Select(m => m.Id + " " + m.Sender + " " + m.State + " " + m.Recipients)));
        var bounced = Assert.Single(Journal(store, id, JournalEventType.Bounced), e => e.Recipient is not null);
        Assert.Equal("nobody@three.test", bounced.Recipient);
        Assert.StartsWith("550 5.1.1", bounced.Status);
        Assert.Equal(2, Journal(store, id, JournalEventType.Delivered).Count);

        // The DSN: from <> to the sender, about nobody@ only.
        var dsn = Assert.Single(store.List(), m => m.Sender == "<>");
        Assert.Equal(["sender@sender.test"], dsn.GetRecipients());
        var report = MimeMessage.Load(store.OpenBody(dsn.Id));
        var multipart = Assert.IsType<MultipartReport>(report.Body);
        Assert.Equal("delivery-status", multipart.ReportType);
        var status = Assert.Single(multipart.OfType<MessageDeliveryStatus>());
        // MimeKit writes a blank line after every group, and reads the last one back as an empty group.
        var perRecipient = Assert.Single(status.StatusGroups.Skip(1), g => g.Count > 0);
        Assert.Equal("rfc822; nobody@three.test", perRecipient["Final-Recipient"]);
        Assert.Equal("failed", perRecipient["Action"]);
        Assert.Equal("5.1.1", perRecipient["Status"]);
        Assert.StartsWith("smtp; 550 5.1.1", perRecipient["Diagnostic-Code"]);
        Assert.Equal("dns; mx.three.test", perRecipient["Remote-MTA"]);
        var returned = Assert.Single(multipart.OfType<MessagePart>());
        Assert.Equal("t@sender.test", returned.Message?.MessageId);
    }

    [PeerFact("dnsmasq", "python3")]
    public async Task Deferral_then_success_on_retry_and_lifetime_expiry_bounces_with_a_dsn_python_can_read()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=later.test,mx.later.test,10", "--host-record=mx.later.test,127.0.0.2",
                                "--mx-host=dead.test,mx.dead.test,10", "--host-record=mx.dead.test,127.0.0.3");
        var store = net.OpenSenderStore();
        var config = net.SenderConfig(c => { c.QueueLifetime = TimeSpan.FromSeconds(2); c.DestinationBackoff = TimeSpan.FromMilliseconds(100); });
        string later = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@later.test"]);
        string dead = await MailNetwork.EnqueueAsync(store, "s@sender.test", ["u@dead.test"]);

        await MailNetwork.PassAsync(config, store);
        var deferred = Env(store, later)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, deferred.State);
        Assert.Equal(1, deferred.Attempts);
        Assert.Equal("4.4.1", deferred.Status);
        Assert.NotNull(deferred.NextAttempt);

        var mx = await net.StartReceiverAsync("127.0.0.2");
        await Task.Delay(2100); // past the 1 s retry and the 2 s lifetime
        await MailNetwork.PassAsync(config, store);

        Assert.Null(Env(store, later));
        Assert.Single(mx.Messages());
        Assert.Equal(2, Journal(store, later, JournalEventType.Attempt).Count(e => e.Recipient is not null));

        Assert.Null(Env(store, dead));
        Assert.Single(Journal(store, dead, JournalEventType.Expired));
        var dsn = Assert.Single(store.List());
        string path = Path.Combine(net.Sender.Root, "dsn.eml");
        await using (var body = store.OpenBody(dsn.Id))
        await using (var file = File.Create(path))
            await body.CopyToAsync(file);

        var python = await Programs.RunAsync(Peers.Require("python3"), ["-c", """
            import email, sys
            from email import policy
            m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
            assert m.get_content_type() == 'multipart/report', m.get_content_type()
            assert m.get_param('report-type') == 'delivery-status'
            parts = list(m.iter_parts())
            ds = parts[1]
            assert ds.get_content_type() == 'message/delivery-status'
            groups = ds.get_payload()
            print('reporting', groups[0]['Reporting-MTA'])
            for g in groups[1:]:
                print('rcpt', g['Final-Recipient'], g['Action'], g['Status'])
            orig = parts[2]
            print('original', orig.get_content_type(), orig.get_payload()[0]['Message-ID'])
            """, path]);
        Assert.True(python.ExitCode == 0, python.ToString());
        Assert.Contains("reporting dns; sender.test", python.Stdout);
        Assert.Contains("rcpt rfc822; u@dead.test failed 4.4.1", python.Stdout);
        Assert.Contains("original message/rfc822 <t@sender.test>", python.Stdout);
    }

    [PeerFact("dnsmasq")]
    public async Task A_dead_destination_gets_one_connection_per_backoff_not_one_per_message()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=down.test,mx.down.test,10", "--host-record=mx.down.test,127.0.0.2");
        var greeter = net.StartGreeter("127.0.0.2", "421 4.3.2 service not available");
        var store = net.OpenSenderStore();
        var config = net.SenderConfig(c => c.DestinationBackoff = TimeSpan.FromHours(1));
        var ids = new List<string>();
        for (int i = 0; i < 40; i++) ids.Add(await MailNetwork.EnqueueAsync(store, "s@sender.test", [$"u{i}@down.test"]));

        await using (var scheduler = new DeliveryScheduler(config, store))
        {
            await scheduler.RunPassAsync(null, CancellationToken.None);
        }

        Assert.Equal(1, greeter.Connections);
        var attempted = ids.Where(id => Env(store, id)!.Recipients[0].Attempts > 0).ToList();
        Assert.Single(attempted);
        // The other 39 were left alone: not attempted, no journal noise, still due.
        Assert.All(ids.Except(attempted), id => Assert.Equal(RecipientState.Pending, Env(store, id)!.Recipients[0].State));
    }

    [PeerFact("dnsmasq")]
    public async Task A_serving_scheduler_probes_a_dead_destination_once_per_backoff_period()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=down.test,mx.down.test,10", "--host-record=mx.down.test,127.0.0.2");
        var greeter = net.StartGreeter("127.0.0.2", "421 4.3.2 service not available");
        var store = net.OpenSenderStore();
        for (int i = 0; i < 10; i++) await MailNetwork.EnqueueAsync(store, "s@sender.test", [$"u{i}@down.test"]);
        // Backoff 400 ms doubling: probes at t0, t0 + 0.4, t0 + 1.2 and t0 + 2.8 s, t0 being the first (JIT, DNS).
        var config = net.SenderConfig(c => { c.DestinationBackoff = TimeSpan.FromMilliseconds(400); c.RetrySchedule = ["1h"]; });

        await using var trigger = new QueueTriggerListener(store.QueuePath);
        await using var scheduler = new DeliveryScheduler(config, store);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3.5));
        await scheduler.RunAsync(trigger, stop.Token);

        Assert.InRange(greeter.Connections, 3, 4);
        Assert.Equal(greeter.Connections, store.List().Count(m => m.Kind == MessageState.Deferred));
    }

    [PeerFact("dnsmasq", "smtp-sink")]
    public async Task Concurrency_caps_hold_and_one_connection_carries_many_messages()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=sink.test,mx.sink.test,10", "--host-record=mx.sink.test,127.0.0.2",
                                "--mx-host=two.test,mx.two.test,10", "--host-record=mx.two.test,127.0.0.3");
        var sink = net.StartSink("127.0.0.2");
        var store = net.OpenSenderStore();
        for (int i = 0; i < 30; i++) await MailNetwork.EnqueueAsync(store, "s@sender.test", [$"u{i}@sink.test"]);
        await MailNetwork.PassAsync(net.SenderConfig(c => { c.ConcurrencyPerDomain = 1; c.ConcurrencyPerDomainMax = 1; }), store);
        Assert.Empty(store.List());
        await WaitForAsync(() => sink.Counters().Messages == 30);
        await Task.Delay(200);
        await WaitForAsync(() => sink.Counters().Quits == 1);
        Assert.Equal(1, sink.Counters().Quits); // one connection (one QUIT) carried the 30 messages

        // Two connections at most to one destination, whatever the backlog.
        var mx = await net.StartReceiverAsync("127.0.0.3");
        for (int i = 0; i < 40; i++) await MailNetwork.EnqueueAsync(store, "s@sender.test", [$"u{i}@two.test"]);
        int peak = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, mx.Listener.ActiveSessions);
                await Task.Delay(2);
            }
        });
        await MailNetwork.PassAsync(net.SenderConfig(c => { c.ConcurrencyPerDomain = 2; c.ConcurrencyPerDomainMax = 2; }), store);
        sampling.Cancel();
        await sampler;
        Assert.Equal(40, mx.Messages().Count);
        Assert.InRange(peak, 1, 2);
    }

    [PeerFact("dnsmasq")]
    public async Task Bytes_arrive_identical_through_receive_queue_and_delivery()
    {
        await using var net = new MailNetwork();
        await net.StartDnsAsync("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.3");
        var far = await net.StartReceiverAsync("127.0.0.3", c => c.HoldIncoming = true);
        // The first hop: a MailOps listener whose queue is the sender's.
        var store = net.OpenSenderStore();
        var config = net.SenderConfig(c => { c.Listen = [$"127.0.0.2:{net.Port}"]; c.RelayClients = ["127.0.0.0/8"]; });
        await using var first = new SmtpListener(new SmtpServerContext(config, store));
        first.Start();

        string body = "Subject: dots\r\nMessage-ID: <dots@test>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
                      ".\r\n..x\r\n.x\r\n...\r\nGrüße, ünïcödé\r\n" + new string('x', 990) + "\r\nend\r\n";
        Assert.StartsWith("250", await RawSmtpClient.SendMessageAsync(new IPEndPoint(IPAddress.Parse("127.0.0.2"), net.Port), "client.test", "s@sender.test", "u@far.test", body, " BODY=8BITMIME"));
        var queued = Assert.Single(store.List());
        Assert.True(queued.Envelope.EightBit, "the first hop saw BODY=8BITMIME");
        byte[] firstHop;
        await using (var s = store.OpenBody(queued.Id)) { var ms = new MemoryStream(); await s.CopyToAsync(ms); firstHop = ms.ToArray(); }
        Assert.EndsWith(body, Encoding.UTF8.GetString(firstHop));

        await MailNetwork.PassAsync(config, store);

        var delivered = Assert.Single(far.Messages());
        Assert.True(delivered.Envelope.EightBit, "BODY=8BITMIME was passed on");
        Assert.Equal(Encoding.UTF8.GetString(firstHop), delivered.Body);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        for (int i = 0; i < 200 && !condition(); i++) await Task.Delay(50);
        Assert.True(condition(), "condition not reached in 10 s");
    }
}
