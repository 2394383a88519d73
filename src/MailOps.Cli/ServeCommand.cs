using MailOps.Core.Config;
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
        var a = CliArgs.Parse(args, ["--queue", "--config", "--listen", "--hostname"], ["--no-delivery"]);
        var (config, _) = QueueLocation.Load(a.Value("--config"), a.Value("--queue"));
        if (a.Values("--listen").Count > 0) config.Listen = a.Values("--listen").ToList();
        if (a.Value("--hostname") is { } hostName) config.HostName = hostName;

        MailServer server;
        try
        {
            server = MailServer.Start(config, new MailServerOptions { Logger = new StderrLogger(), Delivery = !a.Flag("--no-delivery") });
        }
        catch (MailServerException ex)
        {
            throw new CliException(ex.Reason == MailServerStartFailure.QueueInUse ? ExitCodes.TempFail : ExitCodes.Failure, ex.Message);
        }
        await Task.WhenAny(Task.Delay(Timeout.Infinite, cancellationToken), server.Completion).ContinueWith(_ => { }, TaskScheduler.Default);
        await server.StopAsync();
        return server.State == MailServerState.Failed ? ExitCodes.TempFail : ExitCodes.Ok;
    }
}
