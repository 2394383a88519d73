using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using MailOps.Core.Delivery;
using MailOps.Core.Queue;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace MailOps.Core.Hosting;

/// <summary>
/// One server's metrics (docs/logging.md, "Metrics"): System.Diagnostics.Metrics instruments on a
/// meter of its own, served in the Prometheus text format by OpenTelemetry's exporter when the
/// configuration names an endpoint. The main counts are kept as plain numbers too, for
/// Get-MailServer.
/// </summary>
public sealed class MailMetrics : IDisposable
{
    private static int s_lastMeter;
    private readonly Meter _meter;
    private readonly Counter<long> _received, _delivered, _deferred, _bounced, _sessions, _rejects, _tls;
    private readonly Histogram<double> _latency, _attempt;
    private readonly Func<IEnumerable<QueuedMail>> _listQueue;
    private MeterProvider? _provider;

    private long _receivedCount, _deliveredCount, _deferredCount, _bouncedCount, _sessionCount, _rejectCount;

    /// <summary>The queue's shape, read at most once a second however often it is scraped.</summary>
    private (long Stamp, Dictionary<MessageState, int> ByState, double OldestSeconds) _queue;
    private readonly object _queueGate = new();

    internal MailMetrics(Func<IEnumerable<QueuedMail>> listQueue)
    {
        _listQueue = listQueue;
        _meter = new Meter($"MailOps.Server.{Interlocked.Increment(ref s_lastMeter)}", typeof(MailMetrics).Assembly.GetName().Version?.ToString());
        _received = _meter.CreateCounter<long>("mailops.messages.received", "{message}", "Messages taken into the queue, by origin (smtp, submit, sendmail, bounce).");
        _delivered = _meter.CreateCounter<long>("mailops.recipients.delivered", "{recipient}", "Recipients delivered, by route kind (local, mx, smarthost, route).");
        _deferred = _meter.CreateCounter<long>("mailops.recipients.deferred", "{recipient}", "Delivery attempts that failed temporarily, by route kind.");
        _bounced = _meter.CreateCounter<long>("mailops.recipients.bounced", "{recipient}", "Recipients that failed for good, by route kind.");
        _latency = _meter.CreateHistogram("mailops.delivery.latency", "s", "From arrival in the queue to delivery, by route kind.", null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600] });
        _attempt = _meter.CreateHistogram("mailops.delivery.attempt.duration", "s", "One delivery attempt: connection setup and transmission, by route kind and outcome.", null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        _sessions = _meter.CreateCounter<long>("mailops.smtp.sessions", "{session}", "SMTP sessions accepted, by listener role.");
        _rejects = _meter.CreateCounter<long>("mailops.smtp.rejects", "{reply}", "4xx and 5xx replies the listener gave, by command and status (the reason).");
        _tls = _meter.CreateCounter<long>("mailops.tls.outcomes", "{connection}", "TLS: inbound STARTTLS ok or failed; outbound deliveries verified, unverified or in clear.");
        _meter.CreateObservableGauge("mailops.queue.messages", ObserveQueue, "{message}", "Messages in the queue, by state.");
        _meter.CreateObservableGauge("mailops.queue.oldest.age", () => QueueShape().OldestSeconds, "s", "Age of the oldest message in the queue.");
        _meter.CreateObservableCounter("process.cpu", () => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds, "s", "CPU time of the process.");
        _meter.CreateObservableGauge("process.resident.memory", () => Environment.WorkingSet, "By", "Resident memory of the process.");
        _meter.CreateObservableGauge("process.start.time", () => StartTime, "s", "When the process started, in seconds since 1970.");
        _meter.CreateObservableGauge("process.threads", () => Process.GetCurrentProcess().Threads.Count, "{thread}", "Threads of the process.");
        _meter.CreateObservableGauge("process.open.fds", OpenFileDescriptors, "{file}", "Open file descriptors of the process (Linux).");
        _meter.CreateObservableGauge("dotnet.gc.heap.size", () => GC.GetTotalMemory(false), "By", "Managed heap in use.");
    }

    private static readonly double StartTime = new DateTimeOffset(Process.GetCurrentProcess().StartTime.ToUniversalTime()).ToUnixTimeMilliseconds() / 1000.0;

    private static IEnumerable<Measurement<int>> OpenFileDescriptors()
    {
        if (!OperatingSystem.IsLinux()) yield break;
        int n;
        try { n = Directory.GetFiles("/proc/self/fd").Length; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { yield break; }
        yield return new Measurement<int>(n);
    }

    public long Received => Interlocked.Read(ref _receivedCount);
    public long Delivered => Interlocked.Read(ref _deliveredCount);
    public long Deferred => Interlocked.Read(ref _deferredCount);
    public long Bounced => Interlocked.Read(ref _bouncedCount);
    public long SmtpSessions => Interlocked.Read(ref _sessionCount);
    public long SmtpRejects => Interlocked.Read(ref _rejectCount);

    /// <summary>Where the metrics are served (http://IP:PORT/metrics); null when they are not.</summary>
    public string? Url { get; private set; }

    /// <summary>Stops serving the metrics (a reload that moves or removes the endpoint); the counts go on.</summary>
    internal void StopServing()
    {
        _provider?.Dispose();
        _provider = null;
        Url = null;
    }

    /// <summary>Starts serving the metrics at <paramref name="endpoint"/>.</summary>
    internal void Serve(IPEndPoint endpoint)
    {
        string host = endpoint.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{endpoint.Address}]" : endpoint.Address.ToString();
        string prefix = $"http://{host}:{endpoint.Port}/";
        _provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(_meter.Name, Dns.DnsMetrics.MeterName)
            .AddPrometheusHttpListener(o =>
            {
                o.Host = host;
                o.Port = endpoint.Port;
                o.ScopeInfoEnabled = false; // the meter's name is per server; it says nothing to a scraper
                o.TargetInfoEnabled = false;
            })
            .Build();
        Url = prefix + "metrics";
    }

    internal void MessageReceived(string origin)
    {
        Interlocked.Increment(ref _receivedCount);
        _received.Add(1, new KeyValuePair<string, object?>("origin", origin));
    }

    internal void SessionStarted(string role)
    {
        Interlocked.Increment(ref _sessionCount);
        _sessions.Add(1, new KeyValuePair<string, object?>("role", role));
    }

    /// <summary>A 4xx or 5xx reply of the listener; <paramref name="reply"/> is the whole line.</summary>
    internal void Rejected(string command, string reply)
    {
        Interlocked.Increment(ref _rejectCount);
        // "550 5.7.1 ..." gives 550 and 5.7.1; a reply without an enhanced code gives its class.
        string code = reply.Length >= 3 ? reply[..3] : reply;
        string status = reply.Length >= 9 && reply[4] is '4' or '5' && reply[5] == '.' ? reply[4..].Split(' ', 2)[0] : $"{code[0]}.0.0";
        _rejects.Add(1, new KeyValuePair<string, object?>("command", command), new KeyValuePair<string, object?>("code", code), new KeyValuePair<string, object?>("status", status));
    }

    internal void InboundTls(bool ok) => _tls.Add(1, new KeyValuePair<string, object?>("direction", "inbound"), new KeyValuePair<string, object?>("result", ok ? "ok" : "failed"));

    /// <summary>The results of one job to <paramref name="destination"/> (a scheduler key), as recorded in <paramref name="envelope"/>.</summary>
    internal void Recorded(string destination, Envelope envelope, IReadOnlyList<RecipientResult> results, DateTimeOffset now)
    {
        var route = new KeyValuePair<string, object?>("route", RouteKindOf(destination));
        foreach (var result in results)
        {
            var state = envelope.Recipients.FirstOrDefault(r => r.Address.Equals(result.Recipient, StringComparison.OrdinalIgnoreCase))?.State;
            var outcome = state switch
            {
                RecipientState.Delivered => "delivered",
                RecipientState.Bounced => "bounced",
                _ => "deferred",
            };
            (outcome switch { "delivered" => _delivered, "bounced" => _bounced, _ => _deferred }).Add(1, route);
            if (outcome == "delivered") Interlocked.Increment(ref _deliveredCount);
            else if (outcome == "bounced") Interlocked.Increment(ref _bouncedCount);
            else Interlocked.Increment(ref _deferredCount);
            if (outcome == "delivered") _latency.Record(Math.Max(0, (now - envelope.Arrived).TotalSeconds), route);
            if (result.DurationMs is { } ms) _attempt.Record(((result.ConnectMs ?? 0) + ms) / 1000, route, new KeyValuePair<string, object?>("outcome", outcome));
            if (result.Host is not null && result.Host != "maildir")
                _tls.Add(1, new KeyValuePair<string, object?>("direction", "outbound"), new KeyValuePair<string, object?>("result",
                    result.Tls is null ? "none" : result.Tls.Contains("(verified", StringComparison.Ordinal) ? "verified" : "unverified"));
        }
    }

    /// <summary>local, route, smarthost or mx, from a scheduler destination key.</summary>
    internal static string RouteKindOf(string destination) =>
        destination == "local" ? "local"
        : destination.StartsWith("route:", StringComparison.Ordinal) ? "route"
        : destination.StartsWith("smarthost:", StringComparison.Ordinal) ? "smarthost"
        : "mx";

    private (Dictionary<MessageState, int> ByState, double OldestSeconds) QueueShape()
    {
        lock (_queueGate)
        {
            if (_queue.ByState is not null && Stopwatch.GetElapsedTime(_queue.Stamp) < TimeSpan.FromSeconds(1)) return (_queue.ByState, _queue.OldestSeconds);
            var byState = new Dictionary<MessageState, int>();
            foreach (MessageState s in Enum.GetValues<MessageState>()) if (s != MessageState.Delivered) byState[s] = 0;
            double oldest = 0;
            foreach (var m in _listQueue())
            {
                byState[m.Kind] = byState.GetValueOrDefault(m.Kind) + 1;
                oldest = Math.Max(oldest, m.Age.TotalSeconds);
            }
            _queue = (Stopwatch.GetTimestamp(), byState, oldest);
            return (byState, oldest);
        }
    }

    private IEnumerable<Measurement<int>> ObserveQueue() =>
        QueueShape().ByState.Select(kv => new Measurement<int>(kv.Value, new KeyValuePair<string, object?>("state", kv.Key.ToString().ToLowerInvariant())));

    public void Dispose()
    {
        _provider?.Dispose();
        _meter.Dispose();
    }
}
