using System.Net;
using DnsClient;
using MailOps.Core.Config;
using MailOps.Core.Delivery.Remote;
using MailOps.Core.Local;
using MailOps.Core.Queue;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailOps.Core.Delivery;

/// <summary>What a scheduler needs besides the configuration; tests replace the clock and the resolver.</summary>
public sealed class DeliveryOptions
{
    public TimeProvider Clock { get; init; } = TimeProvider.System;
    /// <summary>The resolver; null builds one from DnsServers.</summary>
    public ILookupClient? Dns { get; init; }
    /// <summary>Where this server listens (to recognise itself among MX hosts); null uses the configured Listen endpoints.</summary>
    public Func<IReadOnlyList<IPEndPoint>>? OwnEndpoints { get; init; }
}

/// <summary>
/// qmail-send: decides what to deliver when, and runs the deliveries (spec §5, behaviours 10–15).
/// It wakes on the queue trigger, on the earliest retry time and when a destination's backoff ends
/// (never by polling); splits each message's due recipients by destination (local Maildir, a
/// route, the smart host, or the recipient domain); and runs one worker per connection under the
/// global (ConcurrencyRemote, ConcurrencyLocal) and per-destination limits. A destination starts
/// with one connection and opens up to ConcurrencyPerDomain, rising to ConcurrencyPerDomainMax as
/// deliveries succeed. When every host of a destination fails, the destination is marked down for
/// its backoff: its other messages wait, untouched, and one probe goes when the backoff ends.
/// </summary>
public sealed class DeliveryScheduler : IAsyncDisposable
{
    private const string LocalKey = "local";
    private static readonly TimeSpan MaxSleep = TimeSpan.FromHours(1);

    private readonly MailOpsConfig _config;
    private readonly QueueStore _store;
    private readonly ILogger _log;
    private readonly TimeProvider _clock;
    private readonly RetryPolicy _retry;
    private readonly LocalMailboxes _mailboxes;
    private readonly MaildirDelivery _maildir;
    /// <summary>Fires when stopping begins: no new job starts.</summary>
    private readonly CancellationTokenSource _stopping = new();
    /// <summary>Fires a grace period later: deliveries still in flight are cut (their recipients stay due).</summary>
    private readonly CancellationTokenSource _abort = new();
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(20);

    private readonly object _gate = new();
    private readonly Dictionary<string, Destination> _destinations = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>"id\ndestination" of every job queued or running.</summary>
    private readonly HashSet<string> _scheduled = new(StringComparer.Ordinal);
    /// <summary>Running jobs per message (its active/ marker lives while this is above zero).</summary>
    private readonly Dictionary<string, int> _activeJobs = new(StringComparer.Ordinal);
    /// <summary>What the last read of each envelope said: its file stamp, and when it is next due (MaxValue: never by itself).</summary>
    private readonly Dictionary<string, (DateTime Stamp, DateTimeOffset Due)> _seen = new(StringComparer.Ordinal);
    private readonly List<Task> _workers = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private HashSet<string>? _only;
    private int _remoteRunning, _localRunning;
    private long _jobsRun;

    /// <exception cref="ConfigException">The configuration is invalid.</exception>
    public DeliveryScheduler(MailOpsConfig config, QueueStore store, ILogger? logger = null, DeliveryOptions? options = null)
    {
        config.Validate();
        options ??= new DeliveryOptions();
        _config = config;
        _store = store;
        _log = logger ?? NullLogger.Instance;
        _clock = options.Clock;
        _retry = RetryPolicy.From(config);
        _mailboxes = new LocalMailboxes(config);
        _maildir = new MaildirDelivery(config.MaildirRoot ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(store.QueuePath).TrimEnd(Path.DirectorySeparatorChar)) ?? ".", "maildir"), config.HostName);
        Router = new MxRouter(config, options.Dns ?? Dns.DnsEndpoint.CreateClient(config.DnsServers), options.OwnEndpoints);
    }

    public MxRouter Router { get; }

    /// <summary>Where local mail is written.</summary>
    public string MaildirRoot => _maildir.Root;

    /// <summary>Jobs (one message to one destination) run so far.</summary>
    public long JobsRun => Interlocked.Read(ref _jobsRun);

    // ---------------------------------------------------------------- the two ways to run

    /// <summary>
    /// Serves the queue until <paramref name="cancellationToken"/> fires: delivers what is due,
    /// then sleeps until the trigger is pulled, a retry falls due or a destination's backoff ends.
    /// Deliveries in flight are finished before it returns.
    /// </summary>
    public async Task RunAsync(QueueTriggerListener trigger, CancellationToken cancellationToken)
    {
        using var stop = cancellationToken.Register(BeginStopping);
        Task? triggered = null, woken = null;
        bool rescan = true;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                if (trigger.TakeFlushRequest()) RetryDownDestinations();
                var nextDue = rescan ? Scan() : NextDueFromCache();
                Pump();
                var sleep = SleepUntil(nextDue) - _clock.GetUtcNow();
                if (sleep < TimeSpan.Zero) sleep = TimeSpan.Zero;
                if (sleep > MaxSleep) sleep = MaxSleep;
                // A wait that lost the race stays pending and is reused: a fresh one would let the
                // old waiter swallow the next signal.
                triggered ??= trigger.WaitAsync(cancellationToken);
                woken ??= _wake.WaitAsync(cancellationToken);
                var timer = Task.Delay(sleep, _clock, cancellationToken);
                var first = await Task.WhenAny(triggered, woken, timer).ConfigureAwait(false);
                if (first.IsCanceled) break;
                rescan = first != woken;
                if (first == woken) woken = null;
                if (first == triggered)
                {
                    triggered = null;
                    _log.LogDebug(DeliveryEvents.Woken, "woken by the queue trigger");
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
        await DrainAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// One delivery pass (a flush with no server running, for scheduled jobs): delivers every
    /// recipient due now (of <paramref name="ids"/> only, when given) and returns when nothing
    /// runs any more. Retries that fall due later and destinations marked down during the pass
    /// wait for the next pass or the server.
    /// </summary>
    public async Task RunPassAsync(IReadOnlyCollection<string>? ids, CancellationToken cancellationToken)
    {
        using var stop = cancellationToken.Register(BeginStopping);
        lock (_gate) _only = ids is null ? null : new HashSet<string>(ids, StringComparer.Ordinal);
        Scan();
        while (true)
        {
            Pump();
            Task[] running;
            lock (_gate)
            {
                _workers.RemoveAll(t => t.IsCompleted);
                running = _workers.ToArray();
                if (running.Length == 0) break;
            }
            await Task.WhenAny(running).ConfigureAwait(false);
        }
        await DrainAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
    }

    // ---------------------------------------------------------------- scheduling

    private sealed class Destination(string key, bool local, int window)
    {
        public string Key { get; } = key;
        public bool Local { get; } = local;
        public Queue<string> Jobs { get; } = new();
        public int Running { get; set; }
        public int Window { get; set; } = window;
        /// <summary>Up once a connection succeeded; until then (and while down) only one worker probes.</summary>
        public bool Up { get; set; } = local;
        public DateTimeOffset? DownUntil { get; set; }
        public TimeSpan Backoff { get; set; }
    }

    /// <summary>Reads the envelopes that changed since the last scan and queues a job for every destination with a due recipient.</summary>
    /// <returns>The earliest future time something falls due.</returns>
    private DateTimeOffset Scan()
    {
        var now = _clock.GetUtcNow();
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (id, stamp) in _store.EnvelopeStamps())
        {
            present.Add(id);
            lock (_gate)
            {
                if (_only is not null && !_only.Contains(id)) continue;
                if (_seen.TryGetValue(id, out var seen) && seen.Stamp == stamp && seen.Due > now) continue;
            }
            Envelope? envelope;
            try { envelope = _store.ReadEnvelope(id); }
            catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException or InvalidDataException)
            {
                _log.LogWarning(DeliveryEvents.QueueError, "cannot read the envelope of {Id}: {Error}", id, ex.Message);
                continue;
            }
            if (envelope is null) continue;
            var due = DateTimeOffset.MaxValue;
            lock (_gate)
            {
                if (envelope.Recipients.Count > 0 && envelope.Recipients.All(r => r.IsFinal))
                {
                    Enqueue(id, LocalKey); // finished, but not retired (a crash came between): finish it
                    continue;
                }
                foreach (var r in envelope.Recipients)
                {
                    if (r.State is not (RecipientState.Pending or RecipientState.Deferred)) continue;
                    if (r.NextAttempt is { } at && at > now)
                    {
                        if (at < due) due = at;
                        continue;
                    }
                    Enqueue(id, Router.DestinationOf(QueuedMail.DomainOf(r.Address)));
                }
                _seen[id] = (stamp, due);
            }
            // A long queue: let deliveries start while the rest is read.
            if (present.Count % 256 == 0) Pump();
        }
        lock (_gate)
        {
            foreach (var gone in _seen.Keys.Where(k => !present.Contains(k)).ToList()) _seen.Remove(gone);
        }
        return NextDueFromCache();
    }

    private DateTimeOffset NextDueFromCache()
    {
        lock (_gate)
        {
            var next = DateTimeOffset.MaxValue;
            foreach (var (_, due) in _seen.Values)
                if (due < next) next = due;
            return next;
        }
    }

    private DateTimeOffset SleepUntil(DateTimeOffset nextDue)
    {
        lock (_gate)
        {
            foreach (var d in _destinations.Values)
                if (d.Jobs.Count > 0 && d.DownUntil is { } until && until < nextDue) nextDue = until;
        }
        return nextDue;
    }

    /// <summary>Caller holds _gate.</summary>
    private void Enqueue(string id, string destination)
    {
        if (!_scheduled.Add(id + "\n" + destination)) return;
        if (!_destinations.TryGetValue(destination, out var d))
        {
            bool local = destination == LocalKey;
            _destinations[destination] = d = new Destination(destination, local, local ? _config.ConcurrencyLocal : _config.ConcurrencyPerDomain)
            {
                Backoff = _config.DestinationBackoff,
            };
        }
        d.Jobs.Enqueue(id);
    }

    /// <summary>Starts workers wherever jobs wait and the limits allow.</summary>
    private void Pump()
    {
        if (_stopping.IsCancellationRequested) return;
        var now = _clock.GetUtcNow();
        lock (_gate)
        {
            foreach (var d in _destinations.Values)
            {
                if (d.Jobs.Count == 0) continue;
                if (d.DownUntil is { } until)
                {
                    if (now < until) continue;
                    d.DownUntil = null; // backoff over: one probe
                }
                int allowed = d.Up ? d.Window : 1;
                while (d.Running < allowed && d.Jobs.Count > 0)
                {
                    if (d.Local ? _localRunning >= _config.ConcurrencyLocal : _remoteRunning >= _config.ConcurrencyRemote) break;
                    string first = d.Jobs.Dequeue();
                    d.Running++;
                    if (d.Local) _localRunning++; else _remoteRunning++;
                    _workers.Add(Task.Run(() => WorkAsync(d, first)));
                }
            }
            _workers.RemoveAll(t => t.IsCompleted);
        }
    }

    private void RetryDownDestinations()
    {
        lock (_gate)
        {
            foreach (var d in _destinations.Values)
                if (d.DownUntil is not null) d.DownUntil = _clock.GetUtcNow();
        }
    }

    private void Wake()
    {
        lock (_wake)
        {
            if (_wake.CurrentCount == 0) _wake.Release();
        }
    }

    /// <summary>One worker: one connection (for remote destinations), jobs of its destination one after another.</summary>
    private async Task WorkAsync(Destination d, string firstId)
    {
        await using var session = d.Local ? null : new RemoteSession(_config.HostName, _clock);
        string? id = firstId;
        try
        {
            while (id is not null)
            {
                JobOutcome outcome;
                try
                {
                    outcome = await RunJobAsync(d, id, session).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !_abort.IsCancellationRequested)
                {
                    // A bug or an unreadable spool must not kill the scheduler: the recipients stay
                    // as they were and are tried again on the next scan.
                    _log.LogError(DeliveryEvents.JobFailed, ex, "delivery of {Id} to {Destination} failed unexpectedly", id, d.Key);
                    outcome = JobOutcome.NotRun;
                }
                catch (OperationCanceledException)
                {
                    outcome = JobOutcome.NotRun;
                }
                Interlocked.Increment(ref _jobsRun);
                lock (_gate)
                {
                    _scheduled.Remove(id + "\n" + d.Key);
                    _seen.Remove(id); // its envelope changed: read it again on the next scan
                    id = null;
                    if (outcome == JobOutcome.DestinationFailed)
                    {
                        d.Up = false;
                        d.DownUntil = _clock.GetUtcNow() + d.Backoff;
                        _log.LogWarning(DeliveryEvents.DestinationDown, "destination {Destination} is down; next try in {Backoff}", d.Key, d.Backoff);
                        var max = _config.DestinationBackoff * 32;
                        d.Backoff = d.Backoff * 2 > max ? max : d.Backoff * 2;
                    }
                    else
                    {
                        if (outcome == JobOutcome.Connected && !d.Local)
                        {
                            if (!d.Up) _log.LogInformation(DeliveryEvents.DestinationUp, "destination {Destination} is reachable", d.Key);
                            d.Up = true;
                            d.Backoff = _config.DestinationBackoff;
                            if (d.Window < _config.ConcurrencyPerDomainMax) d.Window++;
                        }
                        if (!_stopping.IsCancellationRequested && d.DownUntil is null && d.Jobs.Count > 0) id = d.Jobs.Dequeue();
                    }
                }
                Pump(); // a destination that just came up may take more workers
            }
        }
        finally
        {
            lock (_gate)
            {
                d.Running--;
                if (d.Local) _localRunning--; else _remoteRunning--;
            }
            Wake();
        }
    }

    private enum JobOutcome { NotRun, Connected, Done, DestinationFailed }

    /// <summary>Delivers one message's due recipients of one destination and records the results.</summary>
    private async Task<JobOutcome> RunJobAsync(Destination d, string id, RemoteSession? session)
    {
        var envelope = _store.ReadEnvelope(id);
        if (envelope is null) return JobOutcome.NotRun; // removed meanwhile
        var now = _clock.GetUtcNow();
        var due = envelope.Recipients
            .Where(r => r.State is RecipientState.Pending or RecipientState.Deferred && (r.NextAttempt is null || r.NextAttempt <= now))
            .Where(r => string.Equals(Router.DestinationOf(QueuedMail.DomainOf(r.Address)), d.Key, StringComparison.OrdinalIgnoreCase))
            .ToList();
        if (due.Count == 0)
        {
            if (envelope.Recipients.Count > 0 && envelope.Recipients.All(r => r.IsFinal))
                await RecordAsync(id, [], [], CancellationToken.None).ConfigureAwait(false);
            return JobOutcome.NotRun;
        }

        lock (_gate)
        {
            _activeJobs[id] = _activeJobs.GetValueOrDefault(id) + 1;
            if (_activeJobs[id] == 1) _store.MarkActive(id);
        }
        try
        {
            IReadOnlyList<RecipientResult> results;
            IReadOnlyList<JournalEvent> connectionEvents = [];
            var outcome = JobOutcome.Done;
            await using (var body = _store.OpenBodyForDelivery(id))
            {
                if (body is null) return JobOutcome.NotRun;
                if (d.Local)
                {
                    results = await DeliverLocallyAsync(envelope, due, body).ConfigureAwait(false);
                }
                else
                {
                    var route = await Router.RouteAsync(QueuedMail.DomainOf(due[0].Address), _abort.Token).ConfigureAwait(false);
                    switch (route.Kind)
                    {
                        case RouteKind.Remote:
                            var attempt = await session!.DeliverAsync(route, envelope, due, body, _abort.Token).ConfigureAwait(false);
                            results = attempt.Results;
                            connectionEvents = attempt.ConnectionEvents;
                            outcome = attempt.DestinationFailed ? JobOutcome.DestinationFailed : JobOutcome.Connected;
                            break;
                        case RouteKind.Defer:
                            results = due.Select(r => RecipientResult.Local(r.Address, route.Status!, route.Reason!)).ToList();
                            outcome = JobOutcome.DestinationFailed;
                            break;
                        default: // Bounce; Local cannot happen (local domains have their own destination)
                            results = due.Select(r => RecipientResult.Local(r.Address, route.Status ?? "5.4.4", route.Reason ?? "no route")).ToList();
                            break;
                    }
                }
            }
            await RecordAsync(id, results, connectionEvents, CancellationToken.None).ConfigureAwait(false);
            return outcome;
        }
        finally
        {
            lock (_gate)
            {
                if (--_activeJobs[id] == 0)
                {
                    _activeJobs.Remove(id);
                    _store.ClearActive(id);
                }
            }
        }
    }

    // ---------------------------------------------------------------- local delivery (qmail-local)

    private async Task<IReadOnlyList<RecipientResult>> DeliverLocallyAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> due, Stream body)
    {
        var results = new List<RecipientResult>(due.Count);
        foreach (var r in due)
        {
            var target = _mailboxes.Resolve(r.Address);
            if (target.Error is not null && target.Mailboxes.Count == 0 && target.Forwards.Count == 0)
            {
                results.Add(RecipientResult.Local(r.Address, "5.1.1", target.Error, "maildir"));
                continue;
            }
            RecipientResult? worst = null;
            foreach (var mailbox in target.Mailboxes)
            {
                var result = _maildir.Deliver(r.Address, mailbox, envelope.Sender, body);
                if (worst is null || result.Outcome != DeliveryOutcome.Delivered) worst = result;
            }
            if (target.Forwards.Count > 0)
            {
                var forwarded = await ForwardAsync(envelope, r.Address, target.Forwards, body).ConfigureAwait(false);
                if (worst is null || forwarded.Outcome != DeliveryOutcome.Delivered) worst = forwarded;
            }
            if (target.Error is not null) _log.LogWarning(DeliveryEvents.AliasProblem, "{Recipient}: {Error}", r.Address, target.Error);
            results.Add(worst!);
        }
        return results;
    }

    /// <summary>An alias that points off-site: a new message with the same body and sender (qmail-local's forward).</summary>
    private async Task<RecipientResult> ForwardAsync(Envelope envelope, string recipient, IReadOnlyList<string> forwards, Stream body)
    {
        var copy = new Envelope
        {
            Arrived = _clock.GetUtcNow(),
            Sender = envelope.Sender,
            Recipients = forwards.Select(f => new EnvelopeRecipient { Address = f }).ToList(),
            Origin = envelope.Origin,
            EightBit = envelope.EightBit,
            SmtpUtf8 = envelope.SmtpUtf8,
            ClientHelo = _config.HostName,
        };
        try
        {
            body.Position = 0;
            string newId = await _store.EnqueueAsync(copy, body).ConfigureAwait(false);
            return RecipientResult.Local(recipient, "2.0.0", $"forwarded to {string.Join(", ", forwards.Select(f => "<" + f + ">"))} as {newId}", "alias");
        }
        catch (QueueFailureException ex)
        {
            return RecipientResult.Local(recipient, "4.3.0", "cannot queue the forwarded copy: " + ex.Message, "alias");
        }
    }

    // ---------------------------------------------------------------- results, retries, bounces

    private async Task RecordAsync(string id, IReadOnlyList<RecipientResult> results, IReadOnlyList<JournalEvent> connectionEvents, CancellationToken cancellationToken)
    {
        var now = _clock.GetUtcNow();
        var recorded = await _store.RecordAsync(id, envelope =>
        {
            var events = new List<JournalEvent>(connectionEvents);
            foreach (var result in results)
            {
                var r = envelope.Recipients.FirstOrDefault(x => !x.IsFinal && x.Address.Equals(result.Recipient, StringComparison.OrdinalIgnoreCase));
                if (r is null) continue;
                r.Attempts++;
                r.Updated = now;
                r.LastError = result.Outcome == DeliveryOutcome.Delivered ? null : result.Summary;
                r.Status = result.EnhancedCode;
                r.LastReply = result.ReplyCode is not null ? $"{result.ReplyCode} {result.EnhancedCode} {result.Detail}" : null;
                r.RemoteHost = result.Host;
                events.Add(new JournalEvent
                {
                    Time = now, Event = JournalEventType.Attempt, Recipient = r.Address, Host = result.Host, Address = result.Address,
                    Tls = result.Tls, Status = result.Status, Detail = result.Detail, DurationMs = result.DurationMs,
                });
                var outcome = result.Outcome;
                string detail = result.Detail;
                if (outcome == DeliveryOutcome.Deferred)
                {
                    if (_retry.NextAttempt(envelope.Arrived, r.Attempts, now) is { } next)
                    {
                        // A recipient held while its attempt was in flight stays held.
                        if (r.State != RecipientState.Held) r.State = RecipientState.Deferred;
                        r.NextAttempt = next;
                        detail = $"{result.Detail} (next attempt {next:u})";
                    }
                    else
                    {
                        outcome = DeliveryOutcome.Bounced;
                        r.LastError = $"{result.Summary} (gave up: the message is older than QueueLifetime {_retry.Lifetime})";
                        events.Add(new JournalEvent { Time = now, Event = JournalEventType.Expired, Recipient = r.Address, Detail = r.LastError });
                        detail = r.LastError;
                    }
                }
                if (outcome != DeliveryOutcome.Deferred)
                {
                    r.State = outcome == DeliveryOutcome.Delivered ? RecipientState.Delivered : RecipientState.Bounced;
                    r.NextAttempt = null;
                }
                events.Add(new JournalEvent
                {
                    Time = now,
                    Event = outcome switch { DeliveryOutcome.Delivered => JournalEventType.Delivered, DeliveryOutcome.Bounced => JournalEventType.Bounced, _ => JournalEventType.Deferred },
                    Recipient = r.Address, Host = result.Host, Status = result.Status, Detail = detail,
                });
            }
            return events;
        }, QueueBounceAsync, cancellationToken).ConfigureAwait(false);
        if (recorded is null && results.Count > 0)
        {
            // Removed by an operator while the delivery was in flight: the attempt happened, so
            // the trace says so, but there is no envelope left to record it in (docs/queue.md).
            _store.AppendJournal(id, connectionEvents.Concat(results.Select(r => new JournalEvent
            {
                Time = now, Event = JournalEventType.Attempt, Recipient = r.Recipient, Host = r.Host, Address = r.Address, Tls = r.Tls,
                Status = r.Status, Detail = r.Detail + " (result dropped: the message was removed during the delivery)", DurationMs = r.DurationMs,
            })).ToList());
        }
    }

    /// <summary>Runs under the message's lock just before a finished message leaves the queue.</summary>
    private async Task QueueBounceAsync(Envelope envelope, CancellationToken cancellationToken)
    {
        if (await BounceBuilder.QueueAsync(_store, envelope, _config.HostName, _clock.GetUtcNow(), cancellationToken).ConfigureAwait(false) is { } bounceId)
            _log.LogInformation(DeliveryEvents.BounceQueued, "{Id}: bounce {BounceId} to <{Sender}>", envelope.Id, bounceId, envelope.Sender);
    }

    // ---------------------------------------------------------------- stopping

    private void BeginStopping()
    {
        _stopping.Cancel();
        _abort.CancelAfter(StopGrace);
    }

    private async Task DrainAsync()
    {
        Task[] running;
        lock (_gate) running = _workers.ToArray();
        try { await Task.WhenAll(running).ConfigureAwait(false); }
        catch (Exception ex) when (ex is OperationCanceledException) { }
    }

    public async ValueTask DisposeAsync()
    {
        BeginStopping();
        await DrainAsync().ConfigureAwait(false);
        _stopping.Dispose();
        _abort.Dispose();
    }
}

/// <summary>Event ids of the delivery engine's log lines.</summary>
internal static class DeliveryEvents
{
    public static readonly EventId QueueError = new(200, "QueueError");
    public static readonly EventId JobFailed = new(201, "JobFailed");
    public static readonly EventId DestinationDown = new(202, "DestinationDown");
    public static readonly EventId DestinationUp = new(203, "DestinationUp");
    public static readonly EventId BounceQueued = new(204, "BounceQueued");
    public static readonly EventId AliasProblem = new(205, "AliasProblem");
    public static readonly EventId Woken = new(206, "Woken");
}
