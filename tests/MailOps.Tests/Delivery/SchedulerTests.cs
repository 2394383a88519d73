using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Queue;
using Microsoft.Extensions.Time.Testing;

namespace MailOps.Tests.Delivery;

/// <summary>The planner on its own, and the scheduler on a fake clock: retries fall due on time, failed jobs stay visible.</summary>
public sealed class SchedulerTests : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    private static readonly DateTimeOffset T0 = new(2026, 11, 27, 8, 0, 0, TimeSpan.Zero);

    private static Envelope Envelope(params EnvelopeRecipient[] recipients) => new() { Id = "1k18aaaaaaaaaaaa", Sender = "s@far.test", Recipients = recipients.ToList() };
    private static string Destination(string domain) => domain == "self.test" ? "local" : domain;

    [Fact]
    public void The_planner_groups_due_recipients_by_destination_and_reports_the_next_retry()
    {
        var plan = DeliveryPlanner.Plan(Envelope(
            new EnvelopeRecipient { Address = "a@self.test" },
            new EnvelopeRecipient { Address = "b@far.test", State = RecipientState.Deferred, NextAttempt = T0 - TimeSpan.FromSeconds(1) },
            new EnvelopeRecipient { Address = "c@far.test" },
            new EnvelopeRecipient { Address = "d@other.test", State = RecipientState.Deferred, NextAttempt = T0 + TimeSpan.FromMinutes(7) },
            new EnvelopeRecipient { Address = "e@other.test", State = RecipientState.Deferred, NextAttempt = T0 + TimeSpan.FromMinutes(3) },
            new EnvelopeRecipient { Address = "f@far.test", State = RecipientState.Held },
            new EnvelopeRecipient { Address = "g@far.test", State = RecipientState.Delivered }), T0, Destination);

        Assert.False(plan.Finished);
        Assert.Equal(T0 + TimeSpan.FromMinutes(3), plan.NextDue);
        Assert.Equal(["far.test", "local"], plan.Jobs.Select(j => j.Destination).Order());
        Assert.Equal(["b@far.test", "c@far.test"], plan.Jobs.Single(j => j.Destination == "far.test").Recipients.Select(r => r.Address));
        Assert.Equal(["a@self.test"], DeliveryPlanner.DueAt(Envelope(new EnvelopeRecipient { Address = "a@self.test" }), "local", T0, Destination).Select(r => r.Address));
    }

    [Fact]
    public void The_planner_says_when_a_message_only_waits_to_be_finished_and_never_plans_held_mail()
    {
        var finished = DeliveryPlanner.Plan(Envelope(
            new EnvelopeRecipient { Address = "a@far.test", State = RecipientState.Delivered },
            new EnvelopeRecipient { Address = "b@far.test", State = RecipientState.Bounced }), T0, Destination);
        Assert.True(finished.Finished);
        Assert.Empty(finished.Jobs);

        var held = DeliveryPlanner.Plan(Envelope(new EnvelopeRecipient { Address = "a@far.test", State = RecipientState.Held, NextAttempt = T0 }), T0, Destination);
        Assert.False(held.Finished);
        Assert.Empty(held.Jobs);
        Assert.Equal(DateTimeOffset.MaxValue, held.NextDue); // held mail never falls due by itself
    }

    private (MailOpsConfig Config, string Maildir, string Blocker) LocalSetup()
    {
        // MaildirRoot under a regular file: every Maildir write fails (4.2.0) until the file goes.
        string blocker = Path.Combine(_q.Root, "blocker");
        File.WriteAllText(blocker, "not a directory");
        string maildir = Path.Combine(blocker, "maildir");
        var config = new MailOpsConfig
        {
            HostName = "mx.self.test",
            LocalDomains = ["self.test"],
            Mailboxes = ["alice@self.test"],
            MaildirRoot = maildir,
            RetrySchedule = ["10m"],
            DnsServers = ["127.0.0.1:9"],
            Tls = new TlsSettings { Enabled = false },
        };
        return (config, maildir, blocker);
    }

    [Fact]
    public async Task A_deferred_retry_runs_when_it_falls_due_not_an_hour_later()
    {
        var clock = new FakeTimeProvider(T0);
        var (config, maildir, blocker) = LocalSetup();
        using var store = _q.Open(new QueueStoreOptions { Clock = clock });
        await using var scheduler = new DeliveryScheduler(config, store, null, new DeliveryOptions { Clock = clock });
        await using var trigger = new QueueTriggerListener(store.QueuePath);
        using var cts = new CancellationTokenSource();
        var run = scheduler.RunAsync(trigger, cts.Token);

        string id = await MailNetwork.EnqueueAsync(store, "s@far.test", ["alice@self.test"], "Subject: retry\r\n\r\nbody\r\n");
        var deferred = await WaitFor(() => store.ReadEnvelope(id)?.Recipients[0] is { State: RecipientState.Deferred } r ? r : null);
        Assert.Equal(T0 + TimeSpan.FromMinutes(10), deferred.NextAttempt);
        Assert.Equal(T0 + TimeSpan.FromMinutes(10), await WaitFor(() => scheduler.NextDueOf(id)));

        File.Delete(blocker); // the operator fixes the disk
        await Task.Delay(200); // let the loop go to sleep on its timer
        clock.Advance(TimeSpan.FromMinutes(10));
        // Nudge the clock on a little while waiting (a sleep computed as the clock moved must not
        // decide the test); an hour-long sleep is far out of this reach.
        var delivered = await WaitFor(() =>
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            var box = Path.Combine(maildir, "self.test", "alice", "new");
            return Directory.Exists(box) && Directory.GetFiles(box).Length == 1 ? "yes" : null;
        });
        Assert.Equal("yes", delivered);
        Assert.True(clock.GetUtcNow() - T0 < TimeSpan.FromMinutes(11), $"delivered at +{clock.GetUtcNow() - T0}");
        await WaitFor(() => store.ReadEnvelope(id) is null ? "gone" : null);
        cts.Cancel();
        await run;
    }

    [Fact]
    public async Task A_job_that_fails_inside_MailOps_leaves_its_recipients_visibly_deferred()
    {
        var (config, _, _) = LocalSetup();
        config.Routes = new(StringComparer.OrdinalIgnoreCase) { ["far.test"] = "127.0.0.1:9" };
        using var store = _q.Open();
        string id = await MailNetwork.EnqueueAsync(store, "s@self.test", ["bob@far.test"], "Subject: broken\r\n\r\nbody\r\n");

        // A courier with a bug: an exception no delivery path expects.
        await using var scheduler = new DeliveryScheduler(config, store, null, new DeliveryOptions { RemoteCouriers = () => new ThrowingCourier() });
        await scheduler.RunPassAsync(null, CancellationToken.None);

        var r = store.ReadEnvelope(id)!.Recipients.Single();
        Assert.Equal(RecipientState.Deferred, r.State);
        Assert.Equal(1, r.Attempts);
        Assert.NotNull(r.NextAttempt);
        Assert.Contains("failed inside MailOps", r.LastError);
        Assert.Contains(store.ReadJournal(id), e => e.Event == JournalEventType.Deferred);
    }

    [Fact]
    public async Task A_dead_destination_gets_one_probe_per_backoff_period_on_the_clock()
    {
        var clock = new FakeTimeProvider(T0);
        var (config, _, _) = LocalSetup();
        config.Routes = new(StringComparer.OrdinalIgnoreCase) { ["far.test"] = "127.0.0.1:9" };
        config.DestinationBackoff = TimeSpan.FromMinutes(1);
        config.RetrySchedule = ["1h"];
        using var store = _q.Open(new QueueStoreOptions { Clock = clock });
        var dead = new DeadDestination();
        await using var scheduler = new DeliveryScheduler(config, store, null, new DeliveryOptions { Clock = clock, RemoteCouriers = () => dead });
        await using var trigger = new QueueTriggerListener(store.QueuePath);
        using var cts = new CancellationTokenSource();
        var run = scheduler.RunAsync(trigger, cts.Token);
        for (int i = 0; i < 5; i++) await MailNetwork.EnqueueAsync(store, "s@self.test", [$"r{i}@far.test"]);

        await WaitFor(() => dead.Calls >= 1 ? "probed" : null);
        await Task.Delay(300);
        Assert.Equal(1, dead.Calls); // the other four wait, untouched
        clock.Advance(TimeSpan.FromSeconds(59));
        await Task.Delay(300);
        Assert.Equal(1, dead.Calls);
        clock.Advance(TimeSpan.FromSeconds(2)); // the backoff ends: one more probe
        await WaitFor(() => dead.Calls >= 2 ? "probed" : null);
        await Task.Delay(300);
        Assert.Equal(2, dead.Calls);
        Assert.Equal(3, store.List().Count(m => m.Envelope.Recipients.All(r => r.Attempts == 0)));
        cts.Cancel();
        await run;
    }

    /// <summary>A destination none of whose hosts answers: every delivery fails the destination.</summary>
    private sealed class DeadDestination : ICourier
    {
        private int _calls;
        public int Calls => Volatile.Read(ref _calls);
        public Task<CourierResult> DeliverAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            var results = recipients.Select(r => RecipientResult.Local(r.Address, "4.4.1", "connection refused")).ToList();
            return Task.FromResult(new CourierResult(results, [], DestinationFailed: true, Connected: false));
        }
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private static async Task<T> WaitFor<T>(Func<T?> probe, int seconds = 10)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (true)
        {
            var value = probe();
            if (value is not null) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met in time");
            await Task.Delay(50);
        }
    }

    private static async Task<DateTimeOffset> WaitFor(Func<DateTimeOffset?> probe, int seconds = 10)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (true)
        {
            if (probe() is { } value && value != DateTimeOffset.MaxValue) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met in time");
            await Task.Delay(50);
        }
    }

    private sealed class ThrowingCourier : ICourier
    {
        public Task<CourierResult> DeliverAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("a bug in a courier");
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
