using System.Net.Security;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailOps.Core.Smtp;

/// <summary>What every session of one listener shares: configuration, queue, policy, certificate, log.</summary>
public sealed class SmtpServerContext
{
    /// <param name="previous">The context a reload replaces: its AUTH lockouts, rate counts and greylist carry over where their settings did not change.</param>
    /// <exception cref="ConfigException">The configuration is invalid or the TLS certificate cannot be loaded.</exception>
    public SmtpServerContext(MailOpsConfig config, QueueStore store, ILogger? logger = null, SmtpServerContext? previous = null)
    {
        config.Validate();
        Config = config;
        Store = store;
        Logger = logger ?? NullLogger.Instance;
        Policy = new RecipientPolicy(config);
        Faults = new FaultRules(config.Rules);
        var before = previous?.Config;
        Auth = before is not null && before.AuthFailureDelay == config.AuthFailureDelay && before.AuthFailureLimit == config.AuthFailureLimit && before.AuthFailureWindow == config.AuthFailureWindow
            ? previous!.Auth : new AuthGuard(config);
        var (r0, r1) = (before?.RateLimits, config.RateLimits);
        Rates = r0 is not null && (r0.ConnectionsPerMinute, r0.MessagesPerMinute, r0.RecipientsPerMinute) == (r1.ConnectionsPerMinute, r1.MessagesPerMinute, r1.RecipientsPerMinute)
            ? previous!.Rates : new ClientRateLimits(config.RateLimits);
        if (config.Dnsbl.Zones.Count > 0) Dnsbl = new Dnsbl(config.Dnsbl, Smtp.Dnsbl.CreateClient(config.DnsServers));
        var (g0, g1) = (before?.Greylisting, config.Greylisting);
        if (g1.Enabled)
            Greylist = previous?.Greylist is { } kept && (g0!.Delay, g0.Expire, g0.AutoAllowAfter) == (g1.Delay, g1.Expire, g1.AutoAllowAfter) ? kept : new Greylist(g1);
        if (config.InboundAuthentication != "Off") Inbound = new InboundAuthentication(Dns.DnsEndpoint.CreateClient(config.DnsServers), config.HostName);
        if (config.Tls.Enabled) _certificates = new ServerCertificates(config.Tls, store.QueuePath, config.HostName, Logger);
    }

    public MailOpsConfig Config { get; }
    /// <summary>The fault rules of this context (a reload starts their Times afresh).</summary>
    internal FaultRules Faults { get; }
    public QueueStore Store { get; }
    /// <summary>The queue's DKIM keys, for mail from trusted clients.</summary>
    public Dkim.DkimKeys Dkim => _dkim ??= new Dkim.DkimKeys(Store.QueuePath);
    private Dkim.DkimKeys? _dkim;
    public ILogger Logger { get; }
    internal RecipientPolicy Policy { get; }
    internal AuthGuard Auth { get; }
    internal ClientRateLimits Rates { get; }
    /// <summary>Null when no blocklist is configured.</summary>
    internal Dnsbl? Dnsbl { get; }
    /// <summary>Null when InboundAuthentication is Off.</summary>
    internal InboundAuthentication? Inbound { get; }
    /// <summary>Null when greylisting is off.</summary>
    internal Greylist? Greylist { get; }
    internal SenderBinding Senders => _senders ??= new SenderBinding(Config);
    private SenderBinding? _senders;
    /// <summary>The TLS options for a session starting now (a renewed certificate on disk is picked up); null when STARTTLS is turned off.</summary>
    internal SslServerAuthenticationOptions? Tls => _certificates?.Current;
    private readonly ServerCertificates? _certificates;
    internal bool AuthAvailable => Config.Users.Count > 0;
    /// <summary>The server's metrics; null for a listener without a server (tests).</summary>
    internal Hosting.MailMetrics? Metrics { get; init; }
}

/// <summary>Event ids of the listener's log lines.</summary>
internal static class SmtpEvents
{
    public static readonly EventId Listening = new(100, "Listening");
    public static readonly EventId Accepted = new(101, "MessageAccepted");
    public static readonly EventId Refused = new(102, "ConnectionRefused");
    public static readonly EventId SessionError = new(103, "SessionError");
    public static readonly EventId QueueFailure = new(104, "QueueFailure");
    public static readonly EventId TlsFailure = new(105, "TlsFailure");
    public static readonly EventId AuthFailure = new(106, "AuthFailure");
    public static readonly EventId Stopping = new(107, "Stopping");
    public static readonly EventId Protocol = new(108, "ProtocolViolation");
    public static readonly EventId AuthLockout = new(109, "AuthLockout");
}
