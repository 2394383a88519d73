using System.Text.Json;
using System.Text.Json.Serialization;

namespace MailOps.Core.Config;

/// <summary>TLS settings (docs/configuration.md "Tls").</summary>
public sealed class TlsSettings
{
    public bool Enabled { get; set; } = true;
    /// <summary>PKCS#12 (.pfx/.p12), or PEM: the certificate chain (certbot's fullchain.pem), with the key in <see cref="KeyPath"/> or in the same file.</summary>
    public string? CertificatePath { get; set; }
    public string? CertificatePassword { get; set; }
    /// <summary>The PEM private key of a PEM CertificatePath (certbot's privkey.pem); it must not be readable by others.</summary>
    public string? KeyPath { get; set; }
}

/// <summary>Per-client rates (docs/smtp.md, "Rate limits"); 0 turns one off. RelayClients are exempt.</summary>
public sealed class RateLimitSettings
{
    /// <summary>New connections per minute from one client (421 4.7.0 beyond).</summary>
    public int ConnectionsPerMinute { get; set; } = 60;
    /// <summary>Transactions (MAIL) per minute from one client (450 4.7.1 beyond); authenticated users are exempt.</summary>
    public int MessagesPerMinute { get; set; } = 300;
    /// <summary>Accepted recipients per minute from one client (452 4.7.1 beyond); authenticated users are exempt.</summary>
    public int RecipientsPerMinute { get; set; } = 1000;
}

/// <summary>DNS blocklists (docs/smtp.md, "Blocklists and greylisting").</summary>
public sealed class DnsblSettings
{
    /// <summary>Zone → weight, e.g. <c>{ "zen.spamhaus.org": 2, "bl.spamcop.net": 1 }</c>.</summary>
    public Dictionary<string, int> Zones { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>The summed weight at which a client is refused.</summary>
    public int Threshold { get; set; } = 1;
}

/// <summary>Greylisting (docs/smtp.md, "Blocklists and greylisting"); off unless Enabled.</summary>
public sealed class GreylistSettings
{
    public bool Enabled { get; set; }
    /// <summary>How long a new triplet must wait before its retry passes.</summary>
    [JsonConverter(typeof(DurationConverter))] public TimeSpan Delay { get; set; } = TimeSpan.FromMinutes(5);
    /// <summary>How long a first attempt is remembered for its retry.</summary>
    [JsonConverter(typeof(DurationConverter))] public TimeSpan Expire { get; set; } = TimeSpan.FromDays(1);
    /// <summary>Passes after which a client network is not greylisted any more.</summary>
    public int AutoAllowAfter { get; set; } = 5;
}

/// <summary>An AUTH user. Only a salted hash is ever stored.</summary>
public sealed class UserSettings
{
    public string Name { get; set; } = "";
    public string PasswordHash { get; set; } = "";
    /// <summary>
    /// The addresses this user may put in MAIL FROM and From: besides their own name (when it is an
    /// address) and the Aliases that lead to it: <c>bob@example.com</c>, <c>@example.com</c> for a
    /// whole domain, <c>*</c> for any. A user with none of these may send as anyone.
    /// </summary>
    public List<string> SendAs { get; set; } = [];
}

/// <summary>
/// The configuration of docs/configuration.md: one JSON file, every key optional. Durations are written as
/// TimeSpan strings ("5.00:00:00") or with a unit suffix ("5d", "10m", "30s", "2h").
/// </summary>
public sealed class MailOpsConfig
{
    public string HostName { get; set; } = Environment.MachineName.ToLowerInvariant();
    public List<string> LocalDomains { get; set; } = ["localhost"];
    public List<string> RelayDomains { get; set; } = [];
    public Dictionary<string, string> VirtualDomains { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    public List<string> Mailboxes { get; set; } = [];
    public Dictionary<string, List<string>> Aliases { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    public string? DefaultDomain { get; set; }
    public string? PlusDomain { get; set; }
    public List<string> RelayClients { get; set; } = ["127.0.0.0/8", "::1/128"];
    /// <summary>IP:PORT entries, each with an optional role: <c>/submission</c> (587) or <c>/submissions</c> (465).</summary>
    public List<string> Listen { get; set; } = ["127.0.0.1:2525"];
    /// <summary>Whether the Received: line of mail submitted on a submission port names the client's address and HELO (it does not by default).</summary>
    public bool RevealSubmitter { get; set; }
    public string? QueuePath { get; set; }
    public string? MaildirRoot { get; set; }
    public TransportSettings? SmartHost { get; set; }
    public Dictionary<string, TransportSettings> Routes { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>
    /// Outbound TLS per destination domain for MX delivery (docs/configuration.md, "TLS policy"):
    /// <c>May</c> (opportunistic, the default), <c>Require</c> (STARTTLS, any certificate),
    /// <c>Verify</c> (STARTTLS, a certificate valid for the MX host's name), <c>Dane</c> (STARTTLS,
    /// a certificate matching the host's DNSSEC-validated TLSA records), <c>None</c>. A domain named
    /// here is exempt from MTA-STS; DANE applies by itself wherever the resolver validates.
    /// </summary>
    public Dictionary<string, string> TlsPolicies { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>A PEM file of CA certificates trusted, besides the system's, wherever a certificate is verified by the Web PKI: Required and Implicit transports (a private relay's CA), the Verify level, MTA-STS policy hosts and MX hosts.</summary>
    public string? TlsTrustAnchors { get; set; }
    public int RemotePort { get; set; } = 25;
    public List<string> DnsServers { get; set; } = [];
    public int ConcurrencyRemote { get; set; } = 20;
    /// <summary>Connections to one destination at first; the window rises by one per success up to <see cref="ConcurrencyPerDomainMax"/>.</summary>
    public int ConcurrencyPerDomain { get; set; } = 5;
    public int ConcurrencyPerDomainMax { get; set; } = 20;
    public int ConcurrencyLocal { get; set; } = 10;
    [JsonConverter(typeof(DurationConverter))] public TimeSpan QueueLifetime { get; set; } = TimeSpan.FromDays(5);
    /// <summary>How long a message waits before its sender gets one "delayed" report (RFC 3464, Postfix's delay_warning_time); 0 turns the reports off.</summary>
    [JsonConverter(typeof(DurationConverter))] public TimeSpan DelayWarningAfter { get; set; } = TimeSpan.FromHours(4);
    /// <summary>
    /// Waits before each retry of a recipient after its 1st, 2nd ... failed attempt; the last one
    /// repeats. Null: qmail's quadratic schedule, retry n at arrival + (20 s × n)², so the first
    /// retry comes after 6 min 40 s.
    /// </summary>
    public List<string>? RetrySchedule { get; set; }
    /// <summary>How long a destination whose hosts all failed is left alone before one probe; doubles on each failure up to 32 times.</summary>
    [JsonConverter(typeof(DurationConverter))] public TimeSpan DestinationBackoff { get; set; } = TimeSpan.FromMinutes(1);
    public long MaxMessageSize { get; set; } = 35L * 1024 * 1024;
    public int MaxRecipients { get; set; } = 100;
    public bool HoldIncoming { get; set; }
    /// <summary>
    /// A test server (docs/testing.md): mail from loopback clients is accepted for any recipient and
    /// kept in the queue's capture/ directory for Get-MailboxMessage; nothing is relayed or
    /// delivered anywhere else. Clients elsewhere are refused.
    /// </summary>
    public bool Capture { get; set; }
    /// <summary>Fault rules of a test server: replies, delays and dropped connections at chosen SMTP stages (docs/testing.md).</summary>
    public List<Smtp.FaultRule> Rules { get; set; } = [];
    public TlsSettings Tls { get; set; } = new();
    public List<UserSettings> Users { get; set; } = [];
    [JsonConverter(typeof(DurationConverter))] public TimeSpan JournalRetention { get; set; } = TimeSpan.FromDays(7);
    /// <summary>How a server writes its log: <c>text</c> (one line per event, Postfix's manner) or <c>json</c> (one object per line; docs/logging.md).</summary>
    public string LogFormat { get; set; } = "text";
    /// <summary>Where a server serves Prometheus metrics ("127.0.0.1:9325"); null: no metrics endpoint.</summary>
    public string? Metrics { get; set; }

    // Listener limits (docs/smtp.md). Not qmail control files: tcpserver's -c and qmail-smtpd's timeouts.
    /// <summary>Connections served at once, all clients together; more get 421 4.7.0.</summary>
    public int MaxConnections { get; set; } = 1000;
    /// <summary>Connections served at once from one client address; more get 421 4.7.0.</summary>
    public int MaxConnectionsPerClient { get; set; } = 50;
    /// <summary>Connections, messages and recipients per minute per client address (IPv6: per /64).</summary>
    public RateLimitSettings RateLimits { get; set; } = new();
    /// <summary>DNS blocklists checked for every client but RelayClients before the greeting.</summary>
    public DnsblSettings Dnsbl { get; set; } = new();
    /// <summary>
    /// SPF, DKIM, DMARC and ARC checks of mail from the Internet for our domains (docs/smtp.md,
    /// "Inbound authentication"): <c>Enforce</c> (DMARC p=reject refused, p=quarantine held),
    /// <c>Report</c> (an Authentication-Results header only) or <c>Off</c>.
    /// </summary>
    public string InboundAuthentication { get; set; } = "Enforce";
    /// <summary>Greylisting of mail from clients that are neither RelayClients nor authenticated.</summary>
    public GreylistSettings Greylisting { get; set; } = new();
    /// <summary>Time a client has to send a complete command line (and to send anything at all during DATA).</summary>
    [JsonConverter(typeof(DurationConverter))] public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(5);
    /// <summary>Longest a session may last, whatever it does.</summary>
    [JsonConverter(typeof(DurationConverter))] public TimeSpan SessionTimeout { get; set; } = TimeSpan.FromHours(1);
    /// <summary>Octets per second a DATA/BDAT transfer must average once it has run longer than IdleTimeout.</summary>
    public long MinDataRate { get; set; } = 256;
    /// <summary>Pause before a failed AUTH is answered.</summary>
    [JsonConverter(typeof(DurationConverter))] public TimeSpan AuthFailureDelay { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>Failed AUTH attempts one client (address, or IPv6 /64) may make within <see cref="AuthFailureWindow"/>; then 421 4.7.0 until the window passes.</summary>
    public int AuthFailureLimit { get; set; } = 10;
    [JsonConverter(typeof(DurationConverter))] public TimeSpan AuthFailureWindow { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Domain that completes a bare address on submission (qmail's defaultdomain).</summary>
    public string EffectiveDefaultDomain => string.IsNullOrEmpty(DefaultDomain) ? HostName : DefaultDomain;

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Reads a configuration file. A missing file at a default location is not an error: pass <paramref name="required"/> false.</summary>
    /// <exception cref="ConfigException">Unreadable, not JSON, an unknown key, or a value out of range.</exception>
    public static MailOpsConfig Load(string path, bool required)
    {
        if (!File.Exists(path))
        {
            if (required) throw new ConfigException($"Configuration file {path} does not exist.");
            return new MailOpsConfig();
        }
        MailOpsConfig? config;
        byte[] json;
        try
        {
            json = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"Cannot read {path}: {ex.Message}", ex);
        }
        // Every unknown key at once, each with its line and the key it was probably meant to be.
        var unknown = ConfigKeyCheck.UnknownKeys(json);
        if (unknown.Count > 0)
            throw new ConfigException($"{path}: {string.Join("; ", unknown)}. The keys are listed in docs/configuration.md.");
        try
        {
            config = JsonSerializer.Deserialize<MailOpsConfig>(json, Json);
        }
        catch (JsonException ex)
        {
            throw new ConfigException($"{path}: {ConfigKeyCheck.Describe(ex)}", ex);
        }
        config ??= new MailOpsConfig();
        // The serializer builds its own dictionaries: give domain and address keys their comparer back.
        config.VirtualDomains = new(config.VirtualDomains, StringComparer.OrdinalIgnoreCase);
        config.Routes = new(config.Routes, StringComparer.OrdinalIgnoreCase);
        config.TlsPolicies = new(config.TlsPolicies, StringComparer.OrdinalIgnoreCase);
        config.Aliases = new(config.Aliases, StringComparer.OrdinalIgnoreCase);
        config.Validate(path);
        config.LoadedFrom = Path.GetFullPath(path);
        return config;
    }

    /// <summary>The file this configuration was read from; null when built in code or defaulted.</summary>
    [JsonIgnore] public string? LoadedFrom { get; private set; }

    /// <summary>
    /// A warning when the file this configuration came from holds secrets (AUTH password hashes,
    /// a certificate password) and others than its owner may read it; null when all is well.
    /// </summary>
    public string? SecretExposureWarning()
    {
        if (LoadedFrom is null || OperatingSystem.IsWindows()) return null;
        if (Users.Count == 0 && string.IsNullOrEmpty(Tls.CertificatePassword)) return null;
        UnixFileMode mode;
        try { mode = File.GetUnixFileMode(LoadedFrom); }
        catch (IOException) { return null; }
        const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        if ((mode & others) == 0) return null;
        return $"{LoadedFrom} holds secrets (password hashes or a certificate password) and is readable by others than its owner; make it private: chmod 600 {LoadedFrom}";
    }

    /// <summary>The transport TLS mode of a TlsPolicies level, or null for a level that does not exist.</summary>
    public static TransportTls? TlsPolicyLevel(string policy) => policy.Trim().ToLowerInvariant() switch
    {
        "may" => TransportTls.Opportunistic,
        "require" or "encrypt" => TransportTls.Encrypted,
        "verify" or "secure" => TransportTls.Required,
        "none" => TransportTls.None,
        "dane" or "dane-only" => TransportTls.Dane,
        _ => null,
    };

    /// <summary>A RelayClients entry: a CIDR network, or one address (a /32 or /128).</summary>
    public static bool TryParseNetwork(string text, out System.Net.IPNetwork network)
    {
        if (System.Net.IPNetwork.TryParse(text, out network)) return true;
        if (!System.Net.IPAddress.TryParse(text, out var address)) return false;
        network = new System.Net.IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
        return true;
    }

    /// <summary>Checks ranges and formats; <see cref="Load"/> calls it, and so must anyone who builds a configuration in code.</summary>
    /// <exception cref="ConfigException">The first problem found.</exception>
    public void Validate(string source = "configuration")
    {
        void Require(bool ok, string message)
        {
            if (!ok) throw new ConfigException($"{source}: {message}");
        }
        Require(!string.IsNullOrWhiteSpace(HostName), "HostName must not be empty.");
        for (int i = 0; i < Rules.Count; i++)
            if (Rules[i]?.Problem() is { } problem) Require(false, $"Rules[{i}]: {problem}");
        Require(RemotePort is > 0 and < 65536, "RemotePort must be 1-65535.");
        Require(ConcurrencyRemote > 0 && ConcurrencyPerDomain > 0 && ConcurrencyLocal > 0, "Concurrency limits must be positive.");
        Require(ConcurrencyPerDomainMax >= ConcurrencyPerDomain, "ConcurrencyPerDomainMax must be at least ConcurrencyPerDomain.");
        Require(DestinationBackoff > TimeSpan.Zero, "DestinationBackoff must be positive.");
        foreach (var step in RetrySchedule ?? [])
            Require(Duration.TryParse(step, out var wait) && wait > TimeSpan.Zero, $"RetrySchedule: '{step}' is not a positive duration (e.g. 10m).");
        foreach (var server in DnsServers)
            Require(Dns.DnsEndpoint.TryParse(server, out _), $"DnsServers: '{server}' is not an address with an optional port (1.2.3.4, 1.2.3.4:53, [::1]:53).");
        foreach (var (domain, folder) in VirtualDomains)
            Require(Local.LocalMailboxes.IsSafeFolder(folder), $"VirtualDomains: '{folder}' for {domain} is not a folder under MaildirRoot (relative, no '..' or leading dot, no '\\').");
        foreach (var (domain, transport) in Routes)
            if (transport.Check(RemotePort) is { } problem) Require(false, $"Routes: {domain}: {problem}.");
        if (SmartHost?.Check(RemotePort) is { } smartProblem) Require(false, $"SmartHost: {smartProblem}.");
        foreach (var (domain, policy) in TlsPolicies)
            Require(TlsPolicyLevel(policy) is not null, $"TlsPolicies: '{policy}' for {domain} is not May, Require, Verify, Dane or None.");
        if (TlsTrustAnchors is not null)
            Require(File.Exists(TlsTrustAnchors), $"TlsTrustAnchors: {TlsTrustAnchors} does not exist.");
        Require(MaxMessageSize > 0, "MaxMessageSize must be positive.");
        Require(MaxRecipients > 0, "MaxRecipients must be positive.");
        Require(QueueLifetime > TimeSpan.Zero, "QueueLifetime must be positive.");
        Require(LogFormat.Equals("text", StringComparison.OrdinalIgnoreCase) || LogFormat.Equals("json", StringComparison.OrdinalIgnoreCase), $"LogFormat: '{LogFormat}' is not text or json.");
        Require(Metrics is null || Smtp.ListenEndpoint.TryParseEndpoint(Metrics) is not null, $"Metrics: '{Metrics}' is not IP:PORT (for example 127.0.0.1:9325).");
        Require(DelayWarningAfter >= TimeSpan.Zero, "DelayWarningAfter must not be negative (0 turns delay warnings off).");
        Require(MaxConnections > 0 && MaxConnectionsPerClient > 0, "Connection limits must be positive.");
        Require(InboundAuthentication is "Enforce" or "Report" or "Off", $"InboundAuthentication: '{InboundAuthentication}' is not Enforce, Report or Off.");
        Require(Dnsbl.Threshold > 0 && Dnsbl.Zones.All(z => z.Key.Trim('.').Contains('.') && z.Value > 0), "Dnsbl: Zones are domain names with positive weights, and the Threshold is positive.");
        Require(Greylisting.Delay >= TimeSpan.Zero && Greylisting.Expire > Greylisting.Delay && Greylisting.AutoAllowAfter > 0, "Greylisting: Delay must not be negative, Expire must be longer than Delay, AutoAllowAfter must be positive.");
        Require(RateLimits.ConnectionsPerMinute >= 0 && RateLimits.MessagesPerMinute >= 0 && RateLimits.RecipientsPerMinute >= 0, "RateLimits must not be negative (0 turns a limit off).");
        Require(IdleTimeout > TimeSpan.Zero && SessionTimeout > TimeSpan.Zero, "Timeouts must be positive.");
        Require(MinDataRate >= 0, "MinDataRate must not be negative.");
        Require(AuthFailureDelay >= TimeSpan.Zero && AuthFailureLimit > 0 && AuthFailureWindow > TimeSpan.Zero, "AuthFailureDelay must not be negative; AuthFailureLimit and AuthFailureWindow must be positive.");
        foreach (var cidr in RelayClients)
            Require(TryParseNetwork(cidr, out _), $"RelayClients: '{cidr}' is not an address or CIDR network.");
        foreach (var user in Users)
            Require(PasswordHash.IsWellFormed(user.PasswordHash), $"Users: the password of '{user.Name}' is not a hash made by 'mailops passwd'.");
    }
}

public sealed class ConfigException : MailOpsException
{
    public ConfigException(string message, Exception? inner = null) : base(message, inner) { }
    public override bool IsTransient => false;
}

/// <summary>Reads "5d", "10m", "30s", "2h", "250ms" or a TimeSpan string.</summary>
public sealed class DurationConverter : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number) return TimeSpan.FromSeconds(reader.GetDouble());
        string text = reader.GetString() ?? throw new JsonException("A duration is required.");
        return Duration.TryParse(text, out var value) ? value : throw new JsonException($"'{text}' is not a duration (e.g. 5d, 10m, 30s).");
    }

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString("c"));
}

public static class Duration
{
    public static bool TryParse(string text, out TimeSpan value)
    {
        text = text.Trim();
        (string suffix, double seconds)[] units = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800)];
        foreach (var (suffix, seconds) in units.OrderByDescending(u => u.suffix.Length))
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) &&
                double.TryParse(text[..^suffix.Length], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double n) && n >= 0)
            {
                value = TimeSpan.FromSeconds(n * seconds);
                return true;
            }
        }
        return TimeSpan.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out value);
    }
}
