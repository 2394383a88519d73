using System.Net;
using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Queue;
using MailOps.Core.Smtp;
using MailOps.Core.Submission;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Hosting;

public enum MailServerState
{
    Running,
    Stopping,
    Stopped,
    /// <summary>The delivery engine itself failed (see <see cref="MailServer.Error"/>); the listener was stopped with it.</summary>
    Failed,
}

/// <summary>Why a server could not start.</summary>
public enum MailServerStartFailure
{
    /// <summary>Another process or server already serves the queue (it holds the server lock).</summary>
    QueueInUse,
    /// <summary>An endpoint could not be bound.</summary>
    ListenFailed,
}

public sealed class MailServerException(MailServerStartFailure reason, string message, Exception? inner = null) : Exception(message, inner)
{
    public MailServerStartFailure Reason { get; } = reason;
}

public sealed class MailServerOptions
{
    /// <summary>Where the server logs; null keeps the lines in <see cref="MailServer.Log"/>.</summary>
    public ILogger? Logger { get; init; }
    /// <summary>False runs the listener only (<c>mailops serve --no-delivery</c>).</summary>
    public bool Delivery { get; init; } = true;
    /// <summary>How long a stop waits for messages being received.</summary>
    public TimeSpan StopGrace { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// One running MTA: the queue's server lock, a crash-leftover sweep, the SMTP listener and the
/// delivery scheduler woken by the queue trigger. <c>mailops serve</c> runs one in the
/// foreground; <c>Start-MailServer</c> runs any number in a PowerShell session, each on its own
/// queue and endpoints. A stop is graceful: no new connections or deliveries, the messages being
/// received and the deliveries in flight are finished, both at once.
/// </summary>
public sealed class MailServer : IAsyncDisposable
{
    private static int s_lastId;

    private readonly QueueStore _store;
    private readonly IDisposable _serverLock;
    private readonly SmtpListener _listener;
    /// <summary>What the listener's new sessions get, and the configuration it came from (a reload replaces both).</summary>
    private SmtpServerContext _context;
    private MailOpsConfig _config;
    private readonly QueueTriggerListener _trigger;
    private readonly DeliveryScheduler _scheduler;
    private readonly MaildropPickup? _pickup;
    private readonly ShowqService? _showq;
    private readonly ILogger _log;
    private readonly TimeSpan _stopGrace;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private volatile MailServerState _state = MailServerState.Running;

    private MailServer(MailOpsConfig config, MailServerOptions options, QueueStore store, IDisposable serverLock, SmtpListener listener, SmtpServerContext context, ILogger log, MailMetrics metrics)
    {
        Metrics = metrics;
        _config = config;
        _context = context;
        Configured = DateTimeOffset.Now;
        Id = Interlocked.Increment(ref s_lastId);
        QueuePath = store.QueuePath;
        HostName = config.HostName;
        Started = DateTimeOffset.Now;
        Delivery = options.Delivery;
        _store = store;
        _serverLock = serverLock;
        _listener = listener;
        _log = log;
        _stopGrace = options.StopGrace;
        Log = log as MemoryLog;
        Endpoints = listener.LocalEndpoints;
        _trigger = new QueueTriggerListener(store.QueuePath);
        _scheduler = new DeliveryScheduler(config, store, log, new DeliveryOptions { OwnEndpoints = () => Endpoints }) { Metrics = metrics };
        _scheduler.MessageEvent += (_, e) => (e.Kind switch
        {
            MailEventKind.Received => MessageReceived,
            MailEventKind.Delivered => MessageDelivered,
            MailEventKind.Deferred => MessageDeferred,
            _ => MessageBounced,
        })?.Invoke(this, e);
        // The mail log: every line this server's queue writes goes to the server's log as well.
        store.Logged += entry =>
        {
            _log.Log(LogLevel.Information, MailLogEventId, entry, null, static (e, _) => e.ToString());
            if (entry.Event == JournalEventType.Received) metrics.MessageReceived(entry.Origin ?? "unknown");
        };
        MaildirRoot = _scheduler.MaildirRoot;
        IsSystemQueue = QueueLocation.IsSystemQueue(QueuePath);
        if (OperatingSystem.IsLinux())
        {
            // Local users' mail (the maildrop) and their view of the queue (showq): a system queue's services.
            _pickup = new MaildropPickup(config, store, log);
            if (IsSystemQueue)
            {
                _showq = new ShowqService(store, log);
                try { _pickup.PublishLimits(); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { log.LogWarning("cannot publish the maildrop's size limit: {Error}", ex.Message); }
            }
        }
        // On the thread pool, never on the caller's SynchronizationContext: a caller whose context
        // is busy (a UI thread, a test runner with every thread taken) must not hold up delivery.
        _run = Task.Run(RunAsync);
    }

    /// <summary>A message came into the queue (over SMTP, from a submission or the maildrop) while this server runs; raised when the server first sees it.</summary>
    public event EventHandler<MailEventArgs>? MessageReceived;
    /// <summary>Recipients of a message were delivered (to a Maildir or a remote server).</summary>
    public event EventHandler<MailEventArgs>? MessageDelivered;
    /// <summary>An attempt failed temporarily; the recipients will be tried again.</summary>
    public event EventHandler<MailEventArgs>? MessageDeferred;
    /// <summary>Recipients failed for good (a report goes to the sender).</summary>
    public event EventHandler<MailEventArgs>? MessageBounced;

    private static readonly EventId MailLogEventId = new(300, "mail");

    /// <summary>Numbers servers in this process, from 1.</summary>
    public int Id { get; }
    public string QueuePath { get; }
    public string HostName { get; private set; }
    public IReadOnlyList<IPEndPoint> Endpoints { get; private set; }

    /// <summary>The delivery scheduler (for tests).</summary>
    internal DeliveryScheduler Scheduler => _scheduler;
    public string MaildirRoot { get; private set; }
    /// <summary>When the configuration was last loaded: the start, or the last reload that was applied.</summary>
    public DateTimeOffset Configured { get; private set; }
    public bool Delivery { get; }
    /// <summary>True when the queue takes mail from every local user through its maildrop (mailops install made it).</summary>
    public bool IsSystemQueue { get; }
    public DateTimeOffset Started { get; }
    public MailServerState State => _state;
    /// <summary>SMTP sessions open now.</summary>
    public int Sessions => _state == MailServerState.Running ? _listener.ActiveSessions : 0;
    /// <summary>Messages in the queue now.</summary>
    public int Queued => _state is MailServerState.Running or MailServerState.Stopping ? _store.Count() : 0;
    public TimeSpan Uptime => DateTimeOffset.Now - Started;
    /// <summary>Why the server failed, when <see cref="State"/> is Failed.</summary>
    public Exception? Error { get; private set; }
    /// <summary>The server's recent log, when it logs in memory (no logger was given).</summary>
    public MemoryLog? Log { get; }
    /// <summary>What this server counted since it started; its Url says where they are served, when they are.</summary>
    public MailMetrics Metrics { get; }
    /// <summary>Messages taken into the queue since the server started.</summary>
    public long Received => Metrics.Received;
    /// <summary>Recipients delivered since the server started.</summary>
    public long Delivered => Metrics.Delivered;
    /// <summary>Delivery attempts that failed temporarily since the server started.</summary>
    public long Deferred => Metrics.Deferred;
    /// <summary>Recipients that failed for good since the server started.</summary>
    public long Bounced => Metrics.Bounced;
    /// <summary>Where Prometheus scrapes this server (Metrics); null when it serves no metrics.</summary>
    public string? MetricsUrl => Metrics.Url;
    /// <summary>Completes when the server has stopped (or failed) and released the queue.</summary>
    public Task Completion => _run;

    /// <exception cref="ConfigException">The configuration is not valid.</exception>
    /// <exception cref="MailServerException">The queue is already served, or an endpoint cannot be bound.</exception>
    /// <exception cref="QueueFailureException">The queue cannot be opened.</exception>
    public static MailServer Start(MailOpsConfig config, MailServerOptions? options = null)
    {
        options ??= new MailServerOptions();
        config.Validate("server settings");
        string queuePath = QueueLocation.Resolve(config.QueuePath);
        config.QueuePath = queuePath;
        var log = options.Logger ?? new MemoryLog();
        var store = QueueStore.Open(queuePath, new QueueStoreOptions { JournalRetention = config.JournalRetention });
        IDisposable? serverLock = null;
        SmtpListener? listener = null;
        var metrics = new MailMetrics(() => store.Stream());
        try
        {
            serverLock = store.TryAcquireServerLock()
                ?? throw new MailServerException(MailServerStartFailure.QueueInUse, $"Another server already serves the queue at {queuePath}.");
            if (config.SecretExposureWarning() is { } exposed) log.LogWarning("{Warning}", exposed);
            // The index check reads every envelope's stat: it runs in the background (RunAsync), so
            // that a long queue starts delivering at once.
            var sweep = store.Sweep(asServer: true, verifyIndex: false);
            log.LogInformation("queue {Queue}: {Count} messages; swept {Tmp} temporary and {Orphans} orphaned files, {Interrupted} interrupted deliveries",
                queuePath, sweep.Queued, sweep.TmpRemoved, sweep.OrphanBodiesRemoved, sweep.InterruptedDeliveries.Count);
            var context = new SmtpServerContext(config, store, log) { Metrics = metrics };
            listener = new SmtpListener(context);
            try
            {
                listener.Start();
            }
            catch (SmtpListenerException ex)
            {
                throw new MailServerException(MailServerStartFailure.ListenFailed, ex.Message, ex);
            }
            if (config.Metrics is { } metricsAt)
            {
                try { metrics.Serve(ListenEndpoint.TryParseEndpoint(metricsAt)!); }
                catch (Exception ex) when (ex is System.Net.HttpListenerException or InvalidOperationException or System.Net.Sockets.SocketException)
                {
                    throw new MailServerException(MailServerStartFailure.ListenFailed, $"Metrics: cannot serve on {metricsAt}: {ex.Message}", ex);
                }
                log.LogInformation("metrics at {Url}", metrics.Url);
            }
            ServedSettings.Write(queuePath, config);
            var server = new MailServer(config, options, store, serverLock, listener, context, log, metrics);
            log.LogInformation("serving on {Endpoints} as {HostName}, queue {Queue}{Delivery}", string.Join(", ", server.Endpoints), config.HostName, queuePath,
                options.Delivery ? $", local mail to {server.MaildirRoot}" : ", delivery off");
            return server;
        }
        catch
        {
            listener?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            metrics.Dispose();
            serverLock?.Dispose();
            store.Dispose();
            throw;
        }
    }

    private readonly object _reloadGate = new();

    /// <summary>
    /// Applies a new configuration to the running server (SIGHUP, Update-MailServer): new Listen
    /// entries are bound and those no longer listed stop accepting; new sessions get the new
    /// limits, users, mailboxes and certificates; deliveries that start from now on use the new
    /// routes, retry times and TLS policies. Sessions and deliveries in flight finish under the
    /// settings they started with. An invalid configuration changes nothing.
    /// </summary>
    /// <returns>What changed, in one line for the log.</returns>
    /// <exception cref="ConfigException">The configuration is invalid, or names another queue (the running one stays).</exception>
    /// <exception cref="MailServerException">A new endpoint cannot be bound (the running configuration stays).</exception>
    public string Reload(MailOpsConfig config)
    {
        lock (_reloadGate)
        {
            if (_state != MailServerState.Running) throw new InvalidOperationException($"The server is {_state}.");
            string path = QueueLocation.Resolve(config.QueuePath);
            if (!string.Equals(path.TrimEnd('/'), QueuePath.TrimEnd('/'), StringComparison.Ordinal))
                throw new ConfigException($"QueuePath: a running server cannot move to another queue ({path}); stop it and start one there.");
            config.QueuePath = QueuePath;
            config.Validate("server settings");
            var context = new SmtpServerContext(config, _store, _log, _context) { Metrics = Metrics };
            (IReadOnlyList<ListenEndpoint> Added, IReadOnlyList<ListenEndpoint> Removed) listening;
            try { listening = _listener.Reconfigure(context); }
            catch (SmtpListenerException ex) { throw new MailServerException(MailServerStartFailure.ListenFailed, ex.Message, ex); }
            _context = context;
            _scheduler.Reconfigure(config);
            if (config.Metrics != _config.Metrics)
            {
                Metrics.StopServing();
                if (config.Metrics is { } metricsAt)
                {
                    try { Metrics.Serve(ListenEndpoint.TryParseEndpoint(metricsAt)!); }
                    catch (Exception ex) when (ex is HttpListenerException or InvalidOperationException or System.Net.Sockets.SocketException)
                    {
                        _log.LogWarning("metrics: cannot serve on {Endpoint}: {Error}", metricsAt, ex.Message);
                    }
                }
            }
            _config = config;
            HostName = config.HostName;
            Endpoints = _listener.LocalEndpoints;
            MaildirRoot = _scheduler.MaildirRoot;
            Configured = DateTimeOffset.Now;
            ServedSettings.Write(QueuePath, config);
            string summary = $"configuration reloaded: listening on {string.Join(", ", _listener.Listening)}"
                + (listening.Added.Count > 0 ? $" (new: {string.Join(", ", listening.Added)})" : "")
                + (listening.Removed.Count > 0 ? $" (closed: {string.Join(", ", listening.Removed)})" : "");
            _log.LogInformation("{Summary}", summary);
            return summary;
        }
    }

    /// <summary>Stops gracefully; safe to call more than once and from any thread.</summary>
    /// <returns>Completes when the server has stopped.</returns>
    public Task StopAsync()
    {
        if (_state == MailServerState.Running) _state = MailServerState.Stopping;
        try { _stop.Cancel(); } catch (ObjectDisposedException) { }
        return _run;
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    /// <summary>Checks the summary index once at start, then keeps it compact: looked at every 15 seconds, rewritten when its appended lines outgrow half its snapshot.</summary>
    private async Task CompactIndexAsync(CancellationToken stop)
    {
        try
        {
            // First the start-up check the sweep left to us (docs/queue.md, "The summary index").
            await Task.Run(_store.VerifyIndex, stop).ConfigureAwait(false);
            while (true)
            {
                await Task.Delay(IndexCompactionInterval, stop).ConfigureAwait(false);
                if (!_store.IndexNeedsCompaction()) continue;
                try { await Task.Run(() => _store.CompactIndex(), stop).ConfigureAwait(false); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    _log.LogWarning("cannot compact the queue's summary index: {Error}", ex.Message);
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    internal static TimeSpan IndexCompactionInterval { get; set; } = TimeSpan.FromSeconds(15);

    private async Task RunAsync()
    {
        var stopRequested = Task.Delay(Timeout.Infinite, _stop.Token);
        var delivering = Delivery ? _scheduler.RunAsync(_trigger, _stop.Token) : stopRequested;
        var pickingUp = _pickup is not null && OperatingSystem.IsLinux() ? _pickup.RunAsync(_trigger, _stop.Token) : Task.CompletedTask;
        var compacting = CompactIndexAsync(_stop.Token);
        await Task.WhenAny(stopRequested, delivering).ConfigureAwait(false);
        bool failed = delivering.IsFaulted;
        if (failed)
        {
            // The scheduler survives failed deliveries; this is the scheduler itself (the spool
            // became unreadable, say). Better to stop than to accept mail nobody delivers.
            Error = delivering.Exception!.GetBaseException();
            _log.LogError(Error, "the delivery engine failed; stopping");
        }
        _state = MailServerState.Stopping;
        _log.LogInformation("stopping");
        // Both at once: the listener finishes the messages it is receiving while the scheduler
        // finishes the deliveries in flight.
        await Task.WhenAll(_listener.StopAsync(_stopGrace), delivering.ContinueWith(_ => { }, TaskScheduler.Default),
            pickingUp.ContinueWith(_ => { }, TaskScheduler.Default), compacting).ConfigureAwait(false);
        if (_showq is not null && OperatingSystem.IsLinux()) await _showq.DisposeAsync().ConfigureAwait(false);
        await _scheduler.DisposeAsync().ConfigureAwait(false);
        await _trigger.DisposeAsync().ConfigureAwait(false);
        await _listener.DisposeAsync().ConfigureAwait(false);
        Metrics.Dispose();
        ServedSettings.Remove(QueuePath);
        _serverLock.Dispose();
        _store.Dispose();
        _log.LogInformation("stopped");
        _state = failed ? MailServerState.Failed : MailServerState.Stopped;
    }

    public override string ToString() => $"MailServer {Id} ({State}) on {string.Join(", ", Endpoints)}, queue {QueuePath}";
}
