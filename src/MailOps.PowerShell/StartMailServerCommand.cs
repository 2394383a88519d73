using System.Collections;
using System.Management.Automation;
using System.Security;
using MailOps.Core.Config;
using MailOps.Core.Hosting;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>
/// Start-MailServer: the SMTP listener and the delivery engine on one queue, in this session.
/// Without -Wait it returns a MailServer and runs in the background (several can run, on other
/// queues and ports); with -Wait it blocks until Ctrl+C and then stops gracefully. Every
/// configuration key of docs/configuration.md is a parameter and overrides the configuration file.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "MailServer", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(MailServer))]
public sealed class StartMailServerCommand : MailOpsCmdlet
{
    [Parameter] [ValidateNotNullOrEmpty] public string? ConfigPath { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(QueuePathCompleter))] public string? QueuePath { get; set; }
    /// <summary>Endpoints as address:port ("127.0.0.1:2525", "[::1]:2525"; port 0 picks a free one).</summary>
    [Parameter(Position = 0)] [ValidateNotNullOrEmpty] public string[]? Listen { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? HostName { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? LocalDomain { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? RelayDomain { get; set; }
    /// <summary>Domain = mailbox directory under MaildirRoot.</summary>
    [Parameter] [ValidateNotNull] public IDictionary? VirtualDomain { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? Mailbox { get; set; }
    /// <summary>Address = one address or a list of addresses.</summary>
    [Parameter] [ValidateNotNull] public IDictionary? Alias { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? DefaultDomain { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? PlusDomain { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? RelayClient { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? MaildirRoot { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? SmartHost { get; set; }
    /// <summary>How the smart host is reached: Opportunistic (default), Required (STARTTLS, verified), Implicit (port 465), None.</summary>
    /// <remarks>A string, not TransportTls: PowerShell lays out parameter types before the engine's assembly can be served (see GetMailQueueCommand.State).</remarks>
    [Parameter] [ValidateSet("Opportunistic", "Required", "Implicit", "None", IgnoreCase = true)] public string? SmartHostTls { get; set; }
    /// <summary>The smart host's AUTH user and password, kept in memory only; sent over TLS only.</summary>
    [Parameter] [Credential] [ValidateNotNull] public PSCredential? SmartHostCredential { get; set; }
    /// <summary>Domain = host[:port].</summary>
    [Parameter] [ValidateNotNull] public IDictionary? Route { get; set; }
    [Parameter] [ValidateRange(1, 65535)] public int? RemotePort { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? DnsServer { get; set; }
    [Parameter] [ValidateRange(1, 10000)] public int? ConcurrencyRemote { get; set; }
    [Parameter] [ValidateRange(1, 10000)] public int? ConcurrencyPerDomain { get; set; }
    [Parameter] [ValidateRange(1, 10000)] public int? ConcurrencyLocal { get; set; }
    [Parameter] public TimeSpan? QueueLifetime { get; set; }
    /// <summary>Waits between attempts ("10m", "1h", ...); the last repeats.</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string[]? RetrySchedule { get; set; }
    [Parameter] [ValidateRange(1L, long.MaxValue)] public long? MaxMessageSize { get; set; }
    [Parameter] [ValidateRange(1, 100000)] public int? MaxRecipients { get; set; }
    [Parameter] public SwitchParameter HoldIncoming { get; set; }
    /// <summary>
    /// A test server: mail from loopback clients is accepted for any recipient and kept for
    /// Get-MailboxMessage and Wait-MailboxMessage; nothing is relayed. Without -QueuePath (and
    /// $env:MAILOPS_QUEUE) it uses a new queue in the temporary directory.
    /// </summary>
    [Parameter] public SwitchParameter Capture { get; set; }
    /// <summary>
    /// Fault rules (hashtables or objects: Stage Connect/Helo/Mail/Rcpt/Data, Sender, Recipient,
    /// Subject, Reply, Delay, Drop, Times): replace the configuration's Rules. Update-MailServer
    /// -Rule changes them on the running server.
    /// </summary>
    [Parameter] [ValidateNotNull] [AllowEmptyCollection] public object[]? Rule { get; set; }
    /// <summary>Serve Prometheus metrics at http://IP:PORT/metrics (loopback or a management address).</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string? Metrics { get; set; }
    /// <summary>A PKCS#12 certificate for STARTTLS (default: one generated and kept under the queue's control/).</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string? TlsCertificatePath { get; set; }
    [Parameter] [ValidateNotNull] public SecureString? TlsCertificatePassword { get; set; }
    /// <summary>Do not offer STARTTLS.</summary>
    [Parameter] public SwitchParameter NoTls { get; set; }
    /// <summary>Run the listener only; mail stays queued.</summary>
    [Parameter] public SwitchParameter NoDelivery { get; set; }
    /// <summary>Block until Ctrl+C, showing the server's log as verbose and warning output, then stop gracefully.</summary>
    [Parameter] public SwitchParameter Wait { get; set; }

    protected override void EndProcessing()
    {
        MailOpsConfig config;
        // Paths are resolved now, in this command's location: Update-MailServer reads the same file
        // and applies the same parameters again later, from wherever it runs.
        string? configPath = string.IsNullOrEmpty(ConfigPath) ? null : GetUnresolvedProviderPathFromPSPath(ConfigPath);
        string? queuePath = MailOps.Core.Local.CaptureStore.QueuePathFor(Capture, string.IsNullOrEmpty(QueuePath) ? null : GetUnresolvedProviderPathFromPSPath(QueuePath), configPath);
        ConfigOverrides overrides;
        try
        {
            overrides = Overrides();
        }
        catch (ConfigException ex)
        {
            ThrowTerminatingError(Errors.InvalidConfiguration(ex));
            return;
        }
        MailOpsConfig Load()
        {
            var (loaded, _) = QueueLocation.Load(configPath, queuePath, forServer: true);
            overrides.ApplyTo(loaded);
            return loaded;
        }
        try
        {
            config = Load();
        }
        catch (ConfigException ex)
        {
            ThrowTerminatingError(Errors.InvalidConfiguration(ex));
            return;
        }
        if (!ShouldProcess($"queue {config.QueuePath} on {string.Join(", ", config.Listen)}", "Start mail server")) return;

        MailServer server;
        try
        {
            server = MailServer.Start(config, new MailServerOptions { Delivery = !NoDelivery });
        }
        catch (MailServerException ex)
        {
            ThrowTerminatingError(new ErrorRecord(ex, ex.Reason == MailServerStartFailure.QueueInUse ? "QueueInUse" : "ListenFailed",
                ex.Reason == MailServerStartFailure.QueueInUse ? ErrorCategory.ResourceBusy : ErrorCategory.ResourceUnavailable, config.QueuePath));
            return;
        }
        catch (ConfigException ex)
        {
            ThrowTerminatingError(Errors.InvalidConfiguration(ex));
            return;
        }
        catch (QueueFailureException ex)
        {
            ThrowTerminatingError(Errors.QueueFailure(ex, config.QueuePath));
            return;
        }

        if (!Wait)
        {
            ServerRegistry.Add(server, Load);
            WriteObject(server);
            return;
        }
        // -Wait: the server belongs to this command. Ctrl+C (StopProcessing) stops it gracefully.
        long cursor = 0;
        try
        {
            while (!server.Completion.Wait(200) && !Cancellation.IsCancellationRequested)
                Drain(server.Log!, ref cursor);
        }
        finally
        {
            Tell($"Stopping {server}: finishing the messages being received and the deliveries in flight.");
            server.StopAsync().GetAwaiter().GetResult();
            Tell($"Stopped MailServer {server.Id}.");
        }
        if (Cancellation.IsCancellationRequested) throw new PipelineStoppedException();
        Drain(server.Log!, ref cursor);
        if (server.State == MailServerState.Failed)
            ThrowTerminatingError(new ErrorRecord(server.Error!, "ServerFailed", ErrorCategory.OperationStopped, server));
    }

    /// <summary>The parameters that were given, as overrides of the configuration file (one mapping, shared with mailops serve).</summary>
    private ConfigOverrides Overrides() => new()
    {
        QueuePath = QueuePath is null ? null : ResolveQueuePath(QueuePath),
        Listen = Listen,
        HostName = HostName,
        LocalDomains = LocalDomain,
        RelayDomains = RelayDomain,
        VirtualDomains = VirtualDomain is null ? null : Map(VirtualDomain, v => v.ToString() ?? ""),
        Mailboxes = Mailbox,
        Aliases = Alias is null ? null : Map<IReadOnlyList<string>>(Alias, v => LanguagePrimitives.GetEnumerable(v) is { } many && v is not string
            ? many.Cast<object>().Select(o => o.ToString() ?? "").ToList()
            : [v.ToString() ?? ""]),
        DefaultDomain = DefaultDomain,
        PlusDomain = PlusDomain,
        RelayClients = RelayClient,
        MaildirRoot = MaildirRoot is null ? null : GetUnresolvedProviderPathFromPSPath(MaildirRoot),
        SmartHost = SmartHost,
        SmartHostTls = SmartHostTls is null ? null : Enum.Parse<TransportTls>(SmartHostTls, ignoreCase: true),
        SmartHostCredential = SmartHostCredential?.GetNetworkCredential(),
        Routes = Route is null ? null : Map(Route, v => v.ToString() ?? ""),
        RemotePort = RemotePort,
        DnsServers = DnsServer,
        ConcurrencyRemote = ConcurrencyRemote,
        ConcurrencyPerDomain = ConcurrencyPerDomain,
        ConcurrencyLocal = ConcurrencyLocal,
        QueueLifetime = QueueLifetime,
        RetrySchedule = RetrySchedule,
        MaxMessageSize = MaxMessageSize,
        MaxRecipients = MaxRecipients,
        HoldIncoming = HoldIncoming.IsPresent ? true : null,
        Capture = Capture.IsPresent ? true : null,
        Rules = Rule is null ? null : FaultRuleConversion.From(Rule),
        Metrics = Metrics,
        TlsCertificatePath = TlsCertificatePath is null ? null : GetUnresolvedProviderPathFromPSPath(TlsCertificatePath),
        TlsCertificatePassword = TlsCertificatePassword is null ? null : new System.Net.NetworkCredential("", TlsCertificatePassword).Password,
        TlsEnabled = NoTls ? false : null,
    };

    private static Dictionary<string, T> Map<T>(IDictionary table, Func<object, T> value)
    {
        var map = new Dictionary<string, T>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry e in table) map[e.Key.ToString() ?? ""] = value(e.Value ?? "");
        return map;
    }
}
