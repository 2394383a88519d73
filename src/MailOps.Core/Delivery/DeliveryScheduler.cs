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
    /// <summary>Tests: the courier for a worker of a remote destination; null uses SMTP (<see cref="RemoteCourier"/>).</summary>
    internal Func<ICourier>? RemoteCouriers { get; init; }
}

/// <summary>
/// qmail-send: decides what to deliver when, and runs the deliveries (docs/delivery.md).
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
    /// <summary>Every recipient's destination on a capturing server (MailOpsConfig.Capture).</summary>
    private const string CaptureKey = "capture";
    private static readonly TimeSpan MaxSleep = TimeSpan.FromHours(1);
    /// <summary>When recording a failed job fails too, the message is looked at again this much later.</summary>
    private static readonly TimeSpan RecheckAfterFailure = TimeSpan.FromMinutes(1);

    // Replaced together by a reload (Reconfigure); a job reads them once, when it starts.
    private MailOpsConfig _config;
    private readonly QueueStore _store;
    private readonly ILogger _log;
    private readonly TimeProvider _clock;
    private RetryPolicy _retry;
    private LocalCourier _local;
    private readonly DeliveryOptions _options;
    /// <summary>Routers a reload replaced: deliveries in flight may still use them, so they are disposed with the scheduler.</summary>
    private readonly List<MxRouter> _replacedRouters = new();
    private readonly Func<ICourier> _remoteCouriers;
    /// <summary>Fires when stopping begins: no new job starts.</summary>
    private readonly CancellationTokenSource _stopping = new();
    /// <summary>Fires a grace period later: deliveries still in flight are cut (their recipients stay due).</summary>
    private readonly CancellationTokenSource _abort = new();
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(20);

    /// <summary>The scheduler's state: destinations, jobs, what each envelope said. Never held across I/O.</summary>
    private readonly object _gate = new();
    private readonly Dictionary<string, Destination> _destinations = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Every job queued or running (no string made per job: at a million queued messages that was 80 MB).</summary>
    private readonly HashSet<(string Id, string Destination)> _scheduled = new();
    /// <summary>What the last look at each envelope said: its file stamp (default: read it again), and when it is next due (MaxValue: never by itself).</summary>
    private readonly Dictionary<string, (DateTime Stamp, DateTimeOffset Due)> _seen = new(StringComparer.Ordinal);
    private readonly List<Task> _workers = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private HashSet<string>? _only;
    private int _remoteRunning, _localRunning;
    private long _jobsRun;

    /// <summary>Running jobs per message (its active/ marker lives while this is above zero), in stripes by id, each its own lock, apart from the scheduler's.</summary>
    private readonly Dictionary<string, int>[] _activeJobs = Enumerable.Range(0, 32).Select(_ => new Dictionary<string, int>(StringComparer.Ordinal)).ToArray();

    /// <exception cref="ConfigException">The configuration is invalid.</exception>
    public DeliveryScheduler(MailOpsConfig config, QueueStore store, ILogger? logger = null, DeliveryOptions? options = null)
    {
        config.Validate();
        options ??= new DeliveryOptions();
        _options = options;
        _store = store;
        _log = logger ?? NullLogger.Instance;
        _clock = options.Clock;
        _startedAt = _clock.GetUtcNow();
        (_config, _retry, _local, Router, MaildirRoot) = Build(config);
        _remoteCouriers = options.RemoteCouriers ?? (() => new RemoteCourier(Router, _config.HostName, _clock));
    }

    private (MailOpsConfig, RetryPolicy, LocalCourier, MxRouter, string) Build(MailOpsConfig config)
    {
        // Beside the queue by default; a capturing test server keeps even this inside its own queue,
        // so that clearing its mailboxes never touches anybody's Maildirs.
        string queue = Path.GetFullPath(_store.QueuePath).TrimEnd(Path.DirectorySeparatorChar);
        var maildir = new MaildirDelivery(config.MaildirRoot ?? (config.Capture ? Path.Combine(queue, "maildir") : Path.Combine(Path.GetDirectoryName(queue) ?? ".", "maildir")), config.HostName);
        var router = new MxRouter(config, _options.Dns ?? Dns.DnsEndpoint.CreateClient(config.DnsServers), _options.OwnEndpoints, Path.Combine(_store.Layout.ControlDir, "mta-sts"));
        return (config, RetryPolicy.From(config), new LocalCourier(config, _store, maildir, _clock, _log), router, maildir.Root);
    }

    /// <summary>
    /// A reload: routes, limits, mailboxes, retry times and TLS policies apply to jobs that start
    /// from now on; jobs in flight finish with what they started with.
    /// </summary>
    /// <exception cref="ConfigException">The configuration is invalid (nothing changed).</exception>
    public void Reconfigure(MailOpsConfig config)
    {
        config.Validate();
        var built = Build(config);
        lock (_gate)
        {
            _replacedRouters.Add(Router);
            (_config, _retry, _local, Router, MaildirRoot) = built;
            foreach (var d in _destinations.Values)
            {
                if (d.Local) { d.MaxWindow = d.Window = config.ConcurrencyLocal; continue; }
                d.MaxWindow = Router.MaxConnectionsOf(d.Key) ?? config.ConcurrencyPerDomainMax;
                d.Window = Math.Min(d.Window, d.MaxWindow);
            }
            _seen.Clear(); // every envelope is planned again with the new routes at the next scan
        }
        QueueTrigger.Pull(_store.QueuePath); // that scan: the trigger makes the loop read the queue

    }

    public MxRouter Router { get; private set; }

    /// <summary>The server's metrics, told the results of every job; null counts nothing.</summary>
    internal Hosting.MailMetrics? Metrics { get; init; }

    /// <summary>A message arrived (seen for the first time since this scheduler started), or recipients were delivered, deferred or bounced.</summary>
    public event EventHandler<MailEventArgs>? MessageEvent;

    private readonly DateTimeOffset _startedAt;

    /// <summary>Raises <see cref="MessageEvent"/>; a handler that throws is logged, never allowed to stop delivery.</summary>
    private void Raise(MailEventArgs args)
    {
        try { MessageEvent?.Invoke(this, args); }
        catch (Exception ex) { _log.LogWarning(DeliveryEvents.QueueError, "a {Kind} event handler failed: {Error}", args.Kind, ex.Message); }
    }

    /// <summary>Where local mail is written.</summary>
    public string MaildirRoot { get; private set; }

    /// <summary>Jobs (one message to one destination) run so far.</summary>
    public long JobsRun => Interlocked.Read(ref _jobsRun);

    /// <summary>When the scheduler will next look at <paramref name="id"/> by itself (a retry), or null when it has no plan for it.</summary>
    internal DateTimeOffset? NextDueOf(string id)
    {
        lock (_gate) return _seen.TryGetValue(id, out var seen) ? seen.Due : null;
    }

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
        _store.CommitObserver = Committed;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                if (trigger.TakeFlushRequest()) RetryDownDestinations();
                // A worker's wake-up needs no scan: it recorded what its job changed (the next
                // retry time included) before waking us. The trigger and the timer do.
                if (rescan) await PaceScanAsync(cancellationToken).ConfigureAwait(false);
                var nextDue = rescan ? TimedScan() : NextDueFromCache();
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
        finally
        {
            _store.CommitObserver = null;
        }
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
        /// <summary>How far <see cref="Window"/> may rise: ConcurrencyPerDomainMax, or the transport's MaxConnections.</summary>
        public int MaxWindow { get; set; }
        /// <summary>Up once a connection succeeded; until then (and while down) only one worker probes.</summary>
        public bool Up { get; set; } = local;
        public DateTimeOffset? DownUntil { get; set; }
        public TimeSpan Backoff { get; set; }
    }

    private string DestinationOf(string domain) => _config.Capture ? CaptureKey : Router.DestinationOf(domain);

    /// <summary>Reads the envelopes that changed since the last scan (or fell due) and queues a job for every destination with a due recipient.</summary>
    /// <returns>The earliest future time something falls due.</returns>
    private DateTimeOffset Scan()
    {
        Interlocked.Increment(ref _scans);
        var now = _clock.GetUtcNow();
        var present = new HashSet<string>(StringComparer.Ordinal);
        var released = _store.ReleasedIds();
        foreach (var (id, written) in _store.EnvelopeStamps())
        {
            present.Add(id);
            // A release leaves the envelope file as it was (a marker says it): a released message
            // counts as changed once, when its marker is first seen.
            var stamp = released.Contains(id) ? written.AddTicks(1) : written;
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
            Admit(envelope, stamp, now);
            // A long queue: let deliveries start while the rest is read.
            if (present.Count % 256 == 0) Pump();
        }
        lock (_gate)
        {
            foreach (var gone in _seen.Keys.Where(k => !present.Contains(k)).ToList()) _seen.Remove(gone);
        }
        return NextDueFromCache(recompute: true);
    }

    private long _scans;

    /// <summary>Scans of env/ so far (for tests).</summary>
    internal long Scans => Interlocked.Read(ref _scans);

    /// <summary>Plans a message just read (or just committed): queues a job for each destination with a due recipient, and remembers its stamp and next due time.</summary>
    private void Admit(Envelope envelope, DateTime stamp, DateTimeOffset now)
    {
        string id = envelope.Id;
        var plan = DeliveryPlanner.Plan(envelope, now, DestinationOf);
        bool isNew;
        lock (_gate) isNew = !_seen.ContainsKey(id);
        if (isNew && envelope.Arrived >= _startedAt - TimeSpan.FromSeconds(1) && MessageEvent is not null)
            Raise(new MailEventArgs { Kind = MailEventKind.Received, Id = id, Sender = envelope.Sender, Recipients = envelope.Recipients.Select(r => r.Address).ToList(),
                Subject = envelope.Subject, MessageId = envelope.MessageId, Time = envelope.Arrived });
        lock (_gate)
        {
            if (plan.Finished) Enqueue(id, LocalKey); // finished, but not retired (a crash or a failed report came between): finish it
            foreach (var job in plan.Jobs) Enqueue(id, job.Destination);
            Remember(id, stamp, plan.NextDue);
        }
    }

    /// <summary>
    /// A message this server's own process just committed (its listener, the maildrop pickup, a
    /// bounce): planned from the envelope in hand, with no scan of env/. Scans stat every
    /// envelope; a listener taking a thousand messages a second would otherwise have the queue
    /// scanned back to back, at a cost that grows with the queue. When the file's time is not
    /// known, the next scan reads the envelope once more.
    /// </summary>
    private void Committed(Envelope envelope, DateTime? stamp)
    {
        lock (_gate)
            if (_only is not null) return; // a pass over given ids only
        Admit(envelope, stamp ?? DateTime.MinValue, _clock.GetUtcNow());
        Wake();
    }

    /// <summary>
    /// A scan reads the whole of env/ (a directory entry and a stat per message). A run of wake-ups
    /// (a release of many messages in batches, a stream of submissions) would otherwise scan a long
    /// queue back to back: a scan waits until twice its own last duration has passed since the
    /// previous one, so that scanning takes at most a third of one thread. Deliveries meanwhile go on
    /// from the destinations' job queues.
    /// </summary>
    private async Task PaceScanAsync(CancellationToken cancellationToken)
    {
        var wait = _lastScanDuration * 2 - (_clock.GetUtcNow() - _lastScanEnd);
        if (wait > TimeSpan.Zero) await Task.Delay(wait, _clock, cancellationToken).ConfigureAwait(false);
    }

    private DateTimeOffset TimedScan()
    {
        var started = _clock.GetUtcNow();
        var nextDue = Scan();
        _lastScanEnd = _clock.GetUtcNow();
        _lastScanDuration = _lastScanEnd - started;
        return nextDue;
    }

    private DateTimeOffset _lastScanEnd = DateTimeOffset.MinValue;
    private TimeSpan _lastScanDuration;

    /// <summary>No later than every due time in <see cref="_seen"/>: waking then is never late (at worst early, and a scan follows). Caller holds _gate to change it.</summary>
    private DateTimeOffset _earliestDue = DateTimeOffset.MaxValue;

    /// <summary>Caller holds _gate.</summary>
    private void Remember(string id, DateTime stamp, DateTimeOffset due)
    {
        _seen[id] = (stamp, due);
        if (due < _earliestDue) _earliestDue = due;
    }

    /// <summary>
    /// When the loop must next wake for a retry. Between scans (a worker's or a commit's wake-up,
    /// many a second) the bound kept as entries change; a scan, which reads every entry anyway,
    /// makes it exact again. Going over every message at every wake-up would grow with the queue.
    /// </summary>
    private DateTimeOffset NextDueFromCache(bool recompute = false)
    {
        lock (_gate)
        {
            if (!recompute) return _earliestDue;
            var next = DateTimeOffset.MaxValue;
            foreach (var (_, due) in _seen.Values)
                if (due < next) next = due;
            return _earliestDue = next;
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
        if (!_scheduled.Add((id, destination))) return;
        if (!_destinations.TryGetValue(destination, out var d))
        {
            // Captures are local work, as Maildir deliveries are: no connection, no window to grow.
            bool local = destination is LocalKey or CaptureKey;
            int? max = local ? null : Router.MaxConnectionsOf(destination);
            _destinations[destination] = d = new Destination(destination, local, local ? _config.ConcurrencyLocal : Math.Min(_config.ConcurrencyPerDomain, max ?? int.MaxValue))
            {
                Backoff = _config.DestinationBackoff,
                MaxWindow = max ?? _config.ConcurrencyPerDomainMax,
            };
        }
        d.Jobs.Enqueue(id);
    }

    /// <summary>Starts workers wherever jobs wait and the limits allow; none once stopping has begun.</summary>
    private void Pump()
    {
        var now = _clock.GetUtcNow();
        lock (_gate)
        {
            // Checked under the lock: DrainAsync takes its snapshot of the workers under it too,
            // so no worker can start after the snapshot and outlive the tokens it uses.
            if (_stopping.IsCancellationRequested) return;
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

    /// <summary>One worker: one courier (one connection, for remote destinations), jobs of its destination one after another.</summary>
    private async Task WorkAsync(Destination d, string firstId)
    {
        ICourier courier = d.Key == CaptureKey ? new CaptureCourier(_store) : d.Local ? _local : _remoteCouriers();
        string? id = firstId;
        try
        {
            while (id is not null)
            {
                var (outcome, due) = await RunJobGuardedAsync(d, id, courier).ConfigureAwait(false);
                Interlocked.Increment(ref _jobsRun);
                lock (_gate)
                {
                    _scheduled.Remove((id, d.Key));
                    // What the job left behind is known: keep its next due time, so that a retry
                    // is not forgotten until the next scan (the stamp is unknown: the next scan reads it).
                    if (due is { } next) Remember(id, default, next);
                    else _seen.Remove(id);
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
                            if (d.Window < d.MaxWindow) d.Window++;
                        }
                        if (!_stopping.IsCancellationRequested && d.DownUntil is null && d.Jobs.Count > 0) id = d.Jobs.Dequeue();
                    }
                }
                Pump(); // a destination that just came up may take more workers
            }
        }
        finally
        {
            if (!d.Local) await courier.DisposeAsync().ConfigureAwait(false);
            lock (_gate)
            {
                d.Running--;
                if (d.Local) _localRunning--; else _remoteRunning--;
            }
            Wake();
        }
    }

    private enum JobOutcome { NotRun, Connected, Done, DestinationFailed }

    /// <summary>
    /// Runs a job and says when its message is next due (null: gone from the queue). A job that
    /// fails unexpectedly (a bug, an unreadable spool) leaves its recipients visibly deferred, with
    /// the error and a next attempt, never silently waiting.
    /// </summary>
    private async Task<(JobOutcome Outcome, DateTimeOffset? Due)> RunJobGuardedAsync(Destination d, string id, ICourier courier)
    {
        try
        {
            return await RunJobAsync(d, id, courier).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_abort.IsCancellationRequested)
        {
            return (JobOutcome.NotRun, _clock.GetUtcNow()); // cut by the stop: still due at the next start
        }
        catch (Exception ex)
        {
            _log.LogError(DeliveryEvents.JobFailed, ex, "delivery of {Id} to {Destination} failed unexpectedly", id, d.Key);
            try
            {
                var envelope = _store.ReadEnvelope(id);
                if (envelope is null) return (JobOutcome.NotRun, null);
                var now = _clock.GetUtcNow();
                var due = DeliveryPlanner.DueAt(envelope, d.Key, now, DestinationOf);
                var results = due.Select(r => RecipientResult.Local(r.Address, "4.3.0", "delivery failed inside MailOps: " + ex.Message)).ToList();
                var recorded = await RecordAsync(id, d.Key, results, []).ConfigureAwait(false);
                return (JobOutcome.NotRun, recorded is null ? null : NextDue(recorded, now, d.Key));
            }
            catch (Exception again) when (again is IOException or UnauthorizedAccessException or QueueFailureException or System.Text.Json.JsonException or InvalidDataException)
            {
                _log.LogError(DeliveryEvents.JobFailed, again, "cannot record the failure of {Id}; looking at it again in {Delay}", id, RecheckAfterFailure);
                return (JobOutcome.NotRun, _clock.GetUtcNow() + RecheckAfterFailure);
            }
        }
    }

    /// <summary>
    /// When a message still in the queue after a job at <paramref name="destination"/> next needs
    /// the scheduler: now when something is due that no queued job will take (which makes the loop
    /// scan), its next retry otherwise. A finished message that is still there failed to be
    /// finished: it is looked at again a little later, not in a tight loop.
    /// </summary>
    private DateTimeOffset NextDue(Envelope envelope, DateTimeOffset now, string destination)
    {
        var plan = DeliveryPlanner.Plan(envelope, now, DestinationOf);
        if (plan.Finished) return now + RecheckAfterFailure;
        bool unscheduled;
        lock (_gate)
            unscheduled = plan.Jobs.Any(j => string.Equals(j.Destination, destination, StringComparison.OrdinalIgnoreCase)
                                            || !_scheduled.Contains((envelope.Id, j.Destination)));
        return unscheduled ? now : plan.NextDue;
    }

    /// <summary>Delivers one message's due recipients of one destination and records the results.</summary>
    private async Task<(JobOutcome, DateTimeOffset?)> RunJobAsync(Destination d, string id, ICourier courier)
    {
        var envelope = _store.ReadEnvelope(id);
        if (envelope is null) return (JobOutcome.NotRun, null); // removed meanwhile
        var now = _clock.GetUtcNow();
        var plan = DeliveryPlanner.Plan(envelope, now, DestinationOf);
        if (plan.Finished)
        {
            await FinishAsync(id).ConfigureAwait(false);
            return (JobOutcome.NotRun, null);
        }
        var due = plan.Jobs.FirstOrDefault(j => string.Equals(j.Destination, d.Key, StringComparison.OrdinalIgnoreCase))?.Recipients;
        if (due is null) return (JobOutcome.NotRun, NextDue(envelope, now, d.Key));

        EnterActive(id);
        try
        {
            CourierResult result;
            await using (var body = _store.OpenBodyForDelivery(id))
            {
                if (body is null)
                {
                    // The envelope is there and its body is not: never silently stranded.
                    result = CourierResult.Of(due.Select(r => RecipientResult.Local(r.Address, "4.3.0", "the message body is missing from the queue")).ToList());
                }
                else
                {
                    result = await courier.DeliverAsync(envelope, due, body, _abort.Token).ConfigureAwait(false);
                }
            }
            var recorded = await RecordAsync(id, d.Key, result.Results, result.ConnectionEvents, ownJobs: 1).ConfigureAwait(false);
            if (recorded?.ReportDue == true) await FinishAsync(id, ownJobs: 1).ConfigureAwait(false);
            var outcome = result.DestinationFailed ? JobOutcome.DestinationFailed : result.Connected ? JobOutcome.Connected : JobOutcome.Done;
            // Finished: it has left the queue (retired, or its report queued and then retired).
            bool gone = recorded is null || recorded.Recipients.All(r => r.IsFinal);
            return (outcome, gone ? null : NextDue(recorded!, _clock.GetUtcNow(), d.Key));
        }
        finally
        {
            LeaveActive(id);
        }
    }

    /// <summary>
    /// The active/ marker: operators see the message Active, and a crash leaves the marker for the
    /// sweep. Jobs of one message for several destinations share it (counted). The file work runs
    /// under one of a few stripe locks chosen by the id, so that deliveries of different messages
    /// do not wait for each other's marker.
    /// </summary>
    private void EnterActive(string id)
    {
        var stripe = ActiveStripe(id);
        lock (stripe)
        {
            int n = stripe.GetValueOrDefault(id) + 1;
            stripe[id] = n;
            if (n > 1) return;
            try { _store.MarkActive(id); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Only a display and a crash hint: the delivery goes on without it.
                _log.LogWarning(DeliveryEvents.QueueError, "cannot mark {Id} active: {Error}", id, ex.Message);
            }
        }
    }

    private void LeaveActive(string id)
    {
        var stripe = ActiveStripe(id);
        lock (stripe)
        {
            if (!stripe.TryGetValue(id, out int n)) return;
            if (n > 1) { stripe[id] = n - 1; return; }
            stripe.Remove(id);
            _store.ClearActive(id);
        }
    }

    private Dictionary<string, int> ActiveStripe(string id) =>
        _activeJobs[(int)((uint)StringComparer.Ordinal.GetHashCode(id) % (uint)_activeJobs.Length)];

    // ---------------------------------------------------------------- results, retries, bounces

    /// <param name="ownJobs">1 when the caller is a job of this message that is still active (its body closed), else 0.</param>
    private async Task<Envelope?> RecordAsync(string id, string destination, IReadOnlyList<RecipientResult> results, IReadOnlyList<JournalEvent> connectionEvents, int ownJobs = 0)
    {
        var now = _clock.GetUtcNow();
        IReadOnlyList<EnvelopeRecipient> delayed = [];
        var recorded = await _store.RecordAsync(id, envelope =>
        {
            var events = DeliveryRecord.Apply(envelope, results, connectionEvents, now, _retry);
            // One delay warning per message: marked in the same write as the results, so it goes at most once.
            delayed = BounceBuilder.DelayedToWarn(envelope, now, _config.DelayWarningAfter);
            if (delayed.Count > 0) envelope.DelayWarned = true;
            return events;
        }, BounceBuilder.IsReportDue, CancellationToken.None, () => ActiveJobs(id) <= ownJobs).ConfigureAwait(false);
        if (recorded is not null) Metrics?.Recorded(destination, recorded, results, now);
        if (recorded is not null && MessageEvent is not null)
        {
            foreach (var group in results.GroupBy(r => recorded.Recipients.FirstOrDefault(x => x.Address.Equals(r.Recipient, StringComparison.OrdinalIgnoreCase))?.State))
            {
                MailEventKind? kind = group.Key switch
                {
                    RecipientState.Delivered => MailEventKind.Delivered,
                    RecipientState.Bounced => MailEventKind.Bounced,
                    RecipientState.Deferred => MailEventKind.Deferred,
                    _ => null,
                };
                if (kind is null) continue;
                var first = group.First();
                Raise(new MailEventArgs { Kind = kind.Value, Id = id, Sender = recorded.Sender, Recipients = group.Select(r => r.Recipient).ToList(),
                    Subject = recorded.Subject, MessageId = recorded.MessageId, Status = first.EnhancedCode, Detail = first.Detail, Time = now });
            }
        }
        if (recorded is not null && delayed.Count > 0)
        {
            try
            {
                string reportId = await BounceBuilder.QueueDelayWarningAsync(_store, recorded, delayed, _config.HostName, now, _config.QueueLifetime, CancellationToken.None).ConfigureAwait(false);
                _log.LogInformation(DeliveryEvents.BounceQueued, "{Id}: delay warning {ReportId} to <{Sender}>", id, reportId, recorded.Sender);
            }
            catch (Exception ex) when (ex is IOException or QueueFailureException)
            {
                _log.LogWarning(DeliveryEvents.QueueError, "{Id}: the delay warning could not be queued: {Error}", id, ex.Message);
            }
        }
        if (recorded is null && results.Count > 0)
        {
            // Removed by an operator while the delivery was in flight: the attempt happened, so
            // the trace says so, but there is no envelope left to record it in (docs/queue.md).
            _store.AppendJournal(id, connectionEvents.Concat(results.Select(r =>
                JournalEvents.Attempt(r, now, note: " (result dropped: the message was removed during the delivery)"))).ToList());
        }
        return recorded;
    }

    /// <summary>Queues the report of a finished message (no lock held) and retires it.</summary>
    /// <param name="ownJobs">As for <see cref="RecordAsync"/>.</param>
    private Task FinishAsync(string id, int ownJobs = 0) =>
        _store.FinishAsync(id, async (envelope, ct) =>
        {
            if (await BounceBuilder.QueueAsync(_store, envelope, _config.HostName, _clock.GetUtcNow(), ct).ConfigureAwait(false) is { } bounceId)
                _log.LogInformation(DeliveryEvents.BounceQueued, "{Id}: bounce {BounceId} to <{Sender}>", envelope.Id, bounceId, envelope.Sender);
        }, CancellationToken.None, () => ActiveJobs(id) <= ownJobs);

    /// <summary>
    /// Jobs of <paramref name="id"/> in flight in this server (the only process that delivers from
    /// the queue). A message that leaves the queue with none but the caller's own, whose body is
    /// closed, has nothing reading its files: they may become spare files.
    /// </summary>
    private int ActiveJobs(string id)
    {
        var stripe = ActiveStripe(id);
        lock (stripe) return stripe.GetValueOrDefault(id);
    }

    // ---------------------------------------------------------------- stopping

    private void BeginStopping()
    {
        lock (_gate)
        {
            if (_stopping.IsCancellationRequested) return;
            _stopping.Cancel();
        }
        _abort.CancelAfter(StopGrace);
    }

    /// <summary>Waits for every worker; none starts once stopping has begun (see <see cref="Pump"/>).</summary>
    private async Task DrainAsync()
    {
        while (true)
        {
            Task[] running;
            lock (_gate)
            {
                _workers.RemoveAll(t => t.IsCompleted);
                running = _workers.ToArray();
            }
            if (running.Length == 0) return;
            try { await Task.WhenAll(running).ConfigureAwait(false); }
            catch (Exception ex) when (ex is OperationCanceledException) { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        BeginStopping();
        await DrainAsync().ConfigureAwait(false);
        _stopping.Dispose();
        _abort.Dispose();
        Router.Dispose();
        foreach (var router in _replacedRouters) router.Dispose();
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
