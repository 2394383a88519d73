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
        try
        {
            config = LoadConfig(ConfigPath, QueuePath).Config;
            Apply(config);
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
            ServerRegistry.Add(server);
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
            server.StopAsync().GetAwaiter().GetResult();
        }
        if (Cancellation.IsCancellationRequested) throw new PipelineStoppedException();
        Drain(server.Log!, ref cursor);
        if (server.State == MailServerState.Failed)
            ThrowTerminatingError(new ErrorRecord(server.Error!, "ServerFailed", ErrorCategory.OperationStopped, server));
    }

    private void Apply(MailOpsConfig c)
    {
        if (QueuePath is not null) c.QueuePath = ResolveQueuePath(QueuePath);
        if (Listen is not null) c.Listen = Listen.ToList();
        if (HostName is not null) c.HostName = HostName;
        if (LocalDomain is not null) c.LocalDomains = LocalDomain.ToList();
        if (RelayDomain is not null) c.RelayDomains = RelayDomain.ToList();
        if (VirtualDomain is not null) c.VirtualDomains = Map(VirtualDomain, v => v.ToString() ?? "");
        if (Mailbox is not null) c.Mailboxes = Mailbox.ToList();
        if (Alias is not null) c.Aliases = Map(Alias, v => LanguagePrimitives.GetEnumerable(v) is { } many && v is not string
            ? many.Cast<object>().Select(o => o.ToString() ?? "").ToList()
            : [v.ToString() ?? ""]);
        if (DefaultDomain is not null) c.DefaultDomain = DefaultDomain;
        if (PlusDomain is not null) c.PlusDomain = PlusDomain;
        if (RelayClient is not null) c.RelayClients = RelayClient.ToList();
        if (MaildirRoot is not null) c.MaildirRoot = GetUnresolvedProviderPathFromPSPath(MaildirRoot);
        if (SmartHost is not null) c.SmartHost = SmartHost;
        if (Route is not null) c.Routes = Map(Route, v => v.ToString() ?? "");
        if (RemotePort is { } port) c.RemotePort = port;
        if (DnsServer is not null) c.DnsServers = DnsServer.ToList();
        if (ConcurrencyRemote is { } remote) c.ConcurrencyRemote = remote;
        if (ConcurrencyPerDomain is { } perDomain)
        {
            c.ConcurrencyPerDomain = perDomain;
            c.ConcurrencyPerDomainMax = Math.Max(c.ConcurrencyPerDomainMax, perDomain);
        }
        if (ConcurrencyLocal is { } local) c.ConcurrencyLocal = local;
        if (QueueLifetime is { } lifetime) c.QueueLifetime = lifetime;
        if (RetrySchedule is not null) c.RetrySchedule = RetrySchedule.ToList();
        if (MaxMessageSize is { } size) c.MaxMessageSize = size;
        if (MaxRecipients is { } rcpts) c.MaxRecipients = rcpts;
        if (HoldIncoming.IsPresent) c.HoldIncoming = HoldIncoming;
        if (TlsCertificatePath is not null) c.Tls.CertificatePath = GetUnresolvedProviderPathFromPSPath(TlsCertificatePath);
        if (TlsCertificatePassword is not null) c.Tls.CertificatePassword = new System.Net.NetworkCredential("", TlsCertificatePassword).Password;
        if (NoTls) c.Tls.Enabled = false;
    }

    private static Dictionary<string, T> Map<T>(IDictionary table, Func<object, T> value)
    {
        var map = new Dictionary<string, T>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry e in table) map[e.Key.ToString() ?? ""] = value(e.Value ?? "");
        return map;
    }
}
