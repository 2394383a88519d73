using MailOps.Core.Config;
using System.Runtime.InteropServices;
using MailOps.Core.Hosting;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops serve</c>: one <see cref="MailServer"/> in the foreground. SIGTERM/SIGINT stop it
/// gracefully: no new connections or deliveries; messages being received and deliveries in
/// flight are finished, then it exits. A failed delivery engine stops it with exit 75.
/// </summary>
internal static class ServeCommand
{
    public static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var a = CliArgs.Parse(args, ["--queue", "--config", "--listen", "--hostname", "--local-domain", "--relay-domain", "--mailbox",
            "--relay-client", "--maildir-root", "--smarthost", "--smarthost-tls", "--dns-server", "--remote-port", "--default-domain", "--max-message-size", "--metrics"],
            ["--no-delivery", "--hold-incoming", "--no-tls", "--capture"]);
        string? queueArg = Core.Local.CaptureStore.QueuePathFor(a.Flag("--capture"), a.Value("--queue"), a.Value("--config"));
        // The same mapping as Start-MailServer's parameters (docs/configuration.md).
        IReadOnlyList<string>? List(string flag) => a.Values(flag).Count > 0 ? a.Values(flag).ToList() : null;
        int? Int(string flag) => a.Value(flag) is { } v ? int.TryParse(v, out int n) ? n : throw CliException.Usage($"{flag}: '{v}' is not a number") : null;
        ConfigOverrides Overrides() => new ConfigOverrides
        {
            Listen = List("--listen"),
            HostName = a.Value("--hostname"),
            LocalDomains = List("--local-domain"),
            RelayDomains = List("--relay-domain"),
            Mailboxes = List("--mailbox"),
            RelayClients = List("--relay-client"),
            MaildirRoot = a.Value("--maildir-root") is { } root ? Path.GetFullPath(root) : null,
            SmartHost = a.Value("--smarthost"),
            SmartHostTls = a.Value("--smarthost-tls") is { } mode
                ? Enum.TryParse<TransportTls>(mode, ignoreCase: true, out var tls) && Enum.IsDefined(tls) ? tls : throw CliException.Usage($"--smarthost-tls must be one of {string.Join(", ", Enum.GetNames<TransportTls>())}.")
                : null,
            DnsServers = List("--dns-server"),
            RemotePort = Int("--remote-port"),
            DefaultDomain = a.Value("--default-domain"),
            MaxMessageSize = Int("--max-message-size"),
            HoldIncoming = a.Flag("--hold-incoming") ? true : null,
            Capture = a.Flag("--capture") ? true : null,
            Metrics = a.Value("--metrics"),
            TlsEnabled = a.Flag("--no-tls") ? false : null,
        };

        // The configuration file (or the queue's) with the command line over it; read again on SIGHUP.
        MailOpsConfig Load()
        {
            var (loaded, path) = QueueLocation.Load(a.Value("--config"), queueArg, forServer: true);
            Overrides().ApplyTo(loaded);
            loaded.QueuePath = path;
            return loaded;
        }
        var config = Load();
        QueueLocation.ActAsOwnerOf(config.QueuePath!); // root serving a system queue serves it as its account
        var logger = new StderrLogger(json: config.LogFormat.Equals("json", StringComparison.OrdinalIgnoreCase));
        MailServer server;
        try
        {
            server = MailServer.Start(config, new MailServerOptions { Logger = logger, Delivery = !a.Flag("--no-delivery") });
        }
        catch (MailServerException ex)
        {
            throw new CliException(ex.Reason == MailServerStartFailure.QueueInUse ? ExitCodes.TempFail : ExitCodes.Failure, ex.Message);
        }
        // SIGHUP: read the configuration again and apply it; a broken one is refused and the running one stays.
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, ctx =>
        {
            ctx.Cancel = true;
            _ = Task.Run(() =>
            {
                SystemdNotify.Send($"RELOADING=1\nMONOTONIC_USEC={System.Diagnostics.Stopwatch.GetTimestamp() / (System.Diagnostics.Stopwatch.Frequency / 1_000_000)}");
                try { server.Reload(Load()); }
                catch (Exception ex) when (ex is ConfigException or MailServerException or CliException or InvalidOperationException)
                {
                    logger.Error($"reload refused, the running configuration stays: {ex.Message}");
                }
                SystemdNotify.Send("READY=1");
            });
        });
        SystemdNotify.Send($"READY=1\nMAINPID={Environment.ProcessId}\nSTATUS=serving on {string.Join(", ", server.Endpoints)}, queue {server.QueuePath}");
        await Task.WhenAny(Task.Delay(Timeout.Infinite, cancellationToken), server.Completion).ContinueWith(_ => { }, TaskScheduler.Default);
        SystemdNotify.Send("STOPPING=1\nSTATUS=finishing the messages in flight");
        await server.StopAsync();
        return server.State == MailServerState.Failed ? ExitCodes.TempFail : ExitCodes.Ok;
    }
}
