using MailOps.Core.Dns;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DnsClient;

namespace MailOps.Core.Delivery.Remote;

/// <summary>A domain's MTA-STS policy (RFC 8461 §3.2), as fetched from <c>https://mta-sts.&lt;domain&gt;/.well-known/mta-sts.txt</c>.</summary>
public sealed record MtaStsPolicy(string Id, string Mode, IReadOnlyList<string> Mx, TimeSpan MaxAge, DateTimeOffset Fetched)
{
    /// <summary>The longest max_age honoured (RFC 8461 §3.2: 31557600 s).</summary>
    private const long MaxAgeLimit = 31_557_600;

    public bool IsEnforce => Mode == "enforce";
    public bool IsTesting => Mode == "testing";
    public DateTimeOffset Expires => Fetched + MaxAge;

    /// <summary>Parses a policy body; null with <paramref name="error"/> when it is not a valid STSv1 policy.</summary>
    public static MtaStsPolicy? Parse(string text, string id, DateTimeOffset fetched, out string? error)
    {
        string? version = null, mode = null;
        long? maxAge = null;
        var mx = new List<string>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "version": version ??= value; break;
                case "mode": mode ??= value; break;
                case "max_age": maxAge ??= long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var age) ? Math.Min(age, MaxAgeLimit) : -1; break;
                case "mx": mx.Add(value.TrimEnd('.').ToLowerInvariant()); break;
            }
        }
        error = version != "STSv1" ? "version is not STSv1"
            : mode is not ("enforce" or "testing" or "none") ? $"mode '{mode}' is not enforce, testing or none"
            : maxAge is null or < 0 ? "max_age is missing or not a number"
            : mode != "none" && mx.Count == 0 ? "no mx: lines"
            : null;
        return error is null ? new MtaStsPolicy(id, mode!, mx, TimeSpan.FromSeconds(maxAge!.Value), fetched) : null;
    }

    /// <summary>Whether <paramref name="host"/> is one of the policy's mx patterns ("*." matches exactly one leftmost label).</summary>
    public bool Allows(string host)
    {
        host = host.TrimEnd('.').ToLowerInvariant();
        foreach (var pattern in Mx)
        {
            if (pattern.StartsWith("*.", StringComparison.Ordinal))
            {
                int dot = host.IndexOf('.');
                if (dot > 0 && host[(dot + 1)..] == pattern[2..]) return true;
            }
            else if (host == pattern) return true;
        }
        return false;
    }

    public override string ToString() => $"mode {Mode}, mx {string.Join(" ", Mx)}, id {Id}";
}

/// <summary>
/// Finds, fetches and caches MTA-STS policies (RFC 8461 §3 and §5): the <c>_mta-sts</c> TXT record
/// names the policy's id; the policy is fetched over HTTPS with a real certificate check (system
/// roots and TlsTrustAnchors), no redirects, 64 KiB at most; a policy is kept for its max_age in
/// memory and in the queue's control/mta-sts directory, so that a restart or an attacker who
/// removes the TXT record cannot turn it off, and is fetched again when the id changes.
/// </summary>
public sealed class MtaStsResolver : IDisposable
{
    /// <summary>Tests: the port policy hosts are reached on (443 on the Internet).</summary>
    internal static int HttpsPort { get; set; } = 443;
    private const int MaxPolicyBytes = 64 * 1024;

    private readonly ILookupClient _dns;
    private readonly string? _cacheDirectory;
    private readonly HttpClient _http;
    private readonly ConcurrentDictionary<string, MtaStsPolicy> _cache = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Domains found to publish no policy, and until when that answer is trusted (one TXT lookup per domain per 5 minutes, not per message).</summary>
    private readonly ConcurrentDictionary<string, DateTimeOffset> _absent = new(StringComparer.OrdinalIgnoreCase);
    private static readonly TimeSpan AbsentFor = TimeSpan.FromMinutes(5);
    private readonly ConcurrentDictionary<string, Lazy<Task<(MtaStsPolicy? Policy, string? Error)>>> _fetching = new(StringComparer.OrdinalIgnoreCase);

    public MtaStsResolver(ILookupClient dns, CertificateTrust trust, string? cacheDirectory = null)
    {
        _dns = dns;
        _cacheDirectory = cacheDirectory;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // RFC 8461 §3.3: redirects are not followed
            UseProxy = false,
            UseCookies = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            ConnectCallback = ConnectAsync,
        };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => trust.Verify(certificate, chain, errors);
        _http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>
    /// The policy that applies to <paramref name="domain"/> now, or null (none published, mode
    /// none, or none could be had: then <paramref name="note"/> says why, and mail goes as without MTA-STS).
    /// </summary>
    public async Task<(MtaStsPolicy? Policy, string? Note)> GetAsync(string domain, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_absent.TryGetValue(domain, out var until) && until > now) return (null, null);
        var (id, dnsError) = await PolicyIdAsync(domain, cancellationToken).ConfigureAwait(false);
        var cached = Cached(domain);
        if (id is null && dnsError is null && cached is null)
        {
            if (_absent.Count > 100_000) _absent.Clear();
            _absent[domain] = now + AbsentFor;
        }
        if (cached is not null && cached.Expires <= now) cached = null;
        // RFC 8461 §5.1: a cached policy stays in force when the record is gone or cannot be read.
        if (cached is not null && (id is null || id == cached.Id)) return (Active(cached), null);
        if (id is null) return (null, dnsError);

        var fetch = _fetching.GetOrAdd(domain, d => new Lazy<Task<(MtaStsPolicy?, string?)>>(() => FetchAsync(d, id, now)));
        (MtaStsPolicy? Policy, string? Error) fetched;
        try { fetched = await fetch.Value.WaitAsync(cancellationToken).ConfigureAwait(false); }
        finally { _fetching.TryRemove(new KeyValuePair<string, Lazy<Task<(MtaStsPolicy?, string?)>>>(domain, fetch)); }
        if (fetched.Policy is null)
            return cached is not null
                ? (Active(cached), $"the MTA-STS policy of {domain} could not be fetched again ({fetched.Error}); the cached one applies")
                : (null, $"the MTA-STS policy of {domain} could not be fetched: {fetched.Error}");
        return (Active(fetched.Policy), null);
    }

    private static MtaStsPolicy? Active(MtaStsPolicy policy) => policy.Mode == "none" ? null : policy;

    /// <summary>The id of the domain's one <c>v=STSv1</c> TXT record, or null and why.</summary>
    private async Task<(string? Id, string? Error)> PolicyIdAsync(string domain, CancellationToken cancellationToken)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _dns.CountedQueryAsync("_mta-sts." + domain, QueryType.TXT, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DnsResponseException or SocketException or IOException or TimeoutException)
        {
            return (null, $"the _mta-sts record of {domain} could not be read: {ex.Message}");
        }
        if (response.HasError) return (null, response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain ? null : $"the _mta-sts record of {domain} could not be read: {response.ErrorMessage}");
        var records = response.Answers.TxtRecords().Select(t => string.Concat(t.Text)).Where(t => t.StartsWith("v=STSv1", StringComparison.Ordinal)).ToList();
        if (records.Count != 1) return (null, records.Count > 1 ? $"{domain} publishes {records.Count} _mta-sts records, which counts as none" : null);
        foreach (var field in records[0].Split(';'))
        {
            var part = field.Trim();
            if (part.StartsWith("id=", StringComparison.Ordinal) && part.Length > 3) return (part[3..], null);
        }
        return (null, $"the _mta-sts record of {domain} has no id");
    }

    private async Task<(MtaStsPolicy?, string?)> FetchAsync(string domain, string id, DateTimeOffset now)
    {
        try
        {
            using var response = await _http.GetAsync($"https://mta-sts.{domain}/.well-known/mta-sts.txt", HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK) return (null, $"HTTP {(int)response.StatusCode} from mta-sts.{domain}");
            if (response.Content.Headers.ContentType?.MediaType is not "text/plain") return (null, $"mta-sts.{domain} sent {response.Content.Headers.ContentType?.MediaType ?? "no media type"}, not text/plain");
            await using var stream = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
            var buffer = new byte[MaxPolicyBytes + 1];
            int length = 0, n;
            while (length < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(length)).ConfigureAwait(false)) > 0) length += n;
            if (length > MaxPolicyBytes) return (null, $"the policy at mta-sts.{domain} is longer than 64 KiB");
            string text = Encoding.UTF8.GetString(buffer, 0, length);
            var policy = MtaStsPolicy.Parse(text, id, now, out var error);
            if (policy is null) return (null, $"the policy at mta-sts.{domain} is not valid: {error}");
            _cache[domain] = policy;
            Save(domain, policy, text);
            return (policy, null);
        }
        catch (HttpRequestException ex)
        {
            return (null, ex.InnerException is System.Security.Authentication.AuthenticationException ? $"the certificate of mta-sts.{domain} does not verify" : ex.Message);
        }
        catch (TaskCanceledException)
        {
            return (null, $"mta-sts.{domain} did not answer within {_http.Timeout.TotalSeconds:0} s");
        }
    }

    /// <summary>Connects to the policy host at the address our resolver gives (the system resolver may not know it).</summary>
    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = new List<IPAddress>();
        if (IPAddress.TryParse(host, out var literal)) addresses.Add(literal);
        else
        {
            foreach (var type in new[] { QueryType.A, QueryType.AAAA })
            {
                var answer = await _dns.CountedQueryAsync(host, type, cancellationToken).ConfigureAwait(false);
                addresses.AddRange(answer.Answers.ARecords().Select(a => a.Address));
                addresses.AddRange(answer.Answers.AaaaRecords().Select(a => a.Address));
            }
        }
        if (addresses.Count == 0) throw new HttpRequestException($"{host} has no address");
        SocketException? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, HttpsPort), cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
        }
        throw new HttpRequestException($"cannot connect to {host}: {last?.Message}", last);
    }

    private MtaStsPolicy? Cached(string domain)
    {
        if (_cache.TryGetValue(domain, out var policy)) return policy;
        if (CacheFile(domain) is not { } file || !File.Exists(file)) return null;
        try
        {
            var lines = File.ReadAllText(file).Split('\n', 2);
            var head = lines[0].Split(' ');
            if (head.Length != 2 || !long.TryParse(head[1], out var fetched)) return null;
            policy = MtaStsPolicy.Parse(lines.Length > 1 ? lines[1] : "", head[0], DateTimeOffset.FromUnixTimeSeconds(fetched), out _);
            if (policy is not null) _cache[domain] = policy;
            return policy;
        }
        catch (IOException) { return null; }
    }

    /// <summary>Keeps the policy across restarts: "id fetched-unix-time", then the policy as fetched.</summary>
    private void Save(string domain, MtaStsPolicy policy, string text)
    {
        if (CacheFile(domain) is not { } file) return;
        try
        {
            Directory.CreateDirectory(_cacheDirectory!);
            string temporary = file + ".tmp";
            File.WriteAllText(temporary, $"{policy.Id} {policy.Fetched.ToUnixTimeSeconds()}\n{text}");
            File.Move(temporary, file, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The memory copy still applies; the next start fetches again.
        }
    }

    private string? CacheFile(string domain) =>
        _cacheDirectory is null || domain.Contains('/') || domain.Contains('\\') || domain.StartsWith('.') ? null : Path.Combine(_cacheDirectory, domain.ToLowerInvariant());

    public void Dispose() => _http.Dispose();
}
