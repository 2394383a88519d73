namespace MailOps.Core.Config;

/// <summary>
/// The settings given on a command line (Start-MailServer's parameters, <c>mailops serve</c>'s
/// flags) over the configuration file: every one that is set replaces the file's value. One
/// mapping for both front ends, so a parameter and its flag can never mean different things.
/// </summary>
public sealed class ConfigOverrides
{
    public string? QueuePath { get; set; }
    public IReadOnlyList<string>? Listen { get; set; }
    public string? HostName { get; set; }
    public IReadOnlyList<string>? LocalDomains { get; set; }
    public IReadOnlyList<string>? RelayDomains { get; set; }
    public IReadOnlyDictionary<string, string>? VirtualDomains { get; set; }
    public IReadOnlyList<string>? Mailboxes { get; set; }
    public IReadOnlyDictionary<string, IReadOnlyList<string>>? Aliases { get; set; }
    public string? DefaultDomain { get; set; }
    public string? PlusDomain { get; set; }
    public IReadOnlyList<string>? RelayClients { get; set; }
    public string? MaildirRoot { get; set; }
    public string? SmartHost { get; set; }
    /// <summary>The smart host's TLS mode (on the SmartHost given here or in the file).</summary>
    public TransportTls? SmartHostTls { get; set; }
    /// <summary>The smart host's AUTH credential, held in memory only (Start-MailServer -SmartHostCredential).</summary>
    public System.Net.NetworkCredential? SmartHostCredential { get; set; }
    public IReadOnlyDictionary<string, string>? Routes { get; set; }
    public int? RemotePort { get; set; }
    public IReadOnlyList<string>? DnsServers { get; set; }
    public int? ConcurrencyRemote { get; set; }
    public int? ConcurrencyPerDomain { get; set; }
    public int? ConcurrencyLocal { get; set; }
    public TimeSpan? QueueLifetime { get; set; }
    public IReadOnlyList<string>? RetrySchedule { get; set; }
    public long? MaxMessageSize { get; set; }
    public int? MaxRecipients { get; set; }
    public bool? HoldIncoming { get; set; }
    public bool? Capture { get; set; }
    /// <summary>Replaces the configuration's Rules.</summary>
    public IReadOnlyList<Smtp.FaultRule>? Rules { get; set; }
    /// <summary>IP:PORT of the metrics endpoint.</summary>
    public string? Metrics { get; set; }
    public string? TlsCertificatePath { get; set; }
    public string? TlsCertificatePassword { get; set; }
    /// <summary>False turns STARTTLS off.</summary>
    public bool? TlsEnabled { get; set; }

    /// <summary>Writes every set value into <paramref name="config"/>; the caller validates the result.</summary>
    public void ApplyTo(MailOpsConfig config)
    {
        if (QueuePath is not null) config.QueuePath = QueuePath;
        if (Listen is not null) config.Listen = Listen.ToList();
        if (HostName is not null) config.HostName = HostName;
        if (LocalDomains is not null) config.LocalDomains = LocalDomains.ToList();
        if (RelayDomains is not null) config.RelayDomains = RelayDomains.ToList();
        if (VirtualDomains is not null) config.VirtualDomains = new(VirtualDomains, StringComparer.OrdinalIgnoreCase);
        if (Mailboxes is not null) config.Mailboxes = Mailboxes.ToList();
        if (Aliases is not null) config.Aliases = Aliases.ToDictionary(a => a.Key, a => a.Value.ToList(), StringComparer.OrdinalIgnoreCase);
        if (DefaultDomain is not null) config.DefaultDomain = DefaultDomain;
        if (PlusDomain is not null) config.PlusDomain = PlusDomain;
        if (RelayClients is not null) config.RelayClients = RelayClients.ToList();
        if (MaildirRoot is not null) config.MaildirRoot = MaildirRoot;
        if (SmartHost is not null) config.SmartHost = SmartHost;
        if ((SmartHostTls is not null || SmartHostCredential is not null) && config.SmartHost is null)
            throw new ConfigException("a smart host's TLS mode or credential was given, and no SmartHost.");
        if (SmartHostTls is { } smartTls) config.SmartHost!.Tls = smartTls;
        if (SmartHostCredential is not null) config.SmartHost!.Credential = SmartHostCredential;
        if (Routes is not null) config.Routes = Routes.ToDictionary(r => r.Key, r => (TransportSettings)r.Value, StringComparer.OrdinalIgnoreCase);
        if (RemotePort is { } port) config.RemotePort = port;
        if (DnsServers is not null) config.DnsServers = DnsServers.ToList();
        if (ConcurrencyRemote is { } remote) config.ConcurrencyRemote = remote;
        if (ConcurrencyPerDomain is { } perDomain)
        {
            config.ConcurrencyPerDomain = perDomain;
            config.ConcurrencyPerDomainMax = Math.Max(config.ConcurrencyPerDomainMax, perDomain);
        }
        if (ConcurrencyLocal is { } local) config.ConcurrencyLocal = local;
        if (QueueLifetime is { } lifetime) config.QueueLifetime = lifetime;
        if (RetrySchedule is not null) config.RetrySchedule = RetrySchedule.ToList();
        if (MaxMessageSize is { } size) config.MaxMessageSize = size;
        if (MaxRecipients is { } rcpts) config.MaxRecipients = rcpts;
        if (HoldIncoming is { } hold) config.HoldIncoming = hold;
        if (Capture is { } capture) config.Capture = capture;
        if (Rules is { } rules) config.Rules = rules.ToList();
        if (Metrics is { } metrics) config.Metrics = metrics;
        if (TlsCertificatePath is not null) config.Tls.CertificatePath = TlsCertificatePath;
        if (TlsCertificatePassword is not null) config.Tls.CertificatePassword = TlsCertificatePassword;
        if (TlsEnabled is { } tls) config.Tls.Enabled = tls;
    }
}
