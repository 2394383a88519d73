using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Queue;
using MailOps.Core.Smtp;
using Microsoft.Extensions.Logging;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops serve</c>: takes the queue's server lock, sweeps crash leftovers, runs the SMTP
/// listener and the delivery engine, which wakes on the queue trigger. SIGTERM/SIGINT stop it
/// gracefully: no new connections or deliveries; messages being received and deliveries in
/// flight are finished, then it exits.
/// </summary>
internal static class ServeCommand
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var a = CliArgs.Parse(args, ["--queue", "--config", "--listen", "--hostname"], ["--no-delivery"]);
        var (config, queuePath) = QueueLocation.Load(a.Value("--config"), a.Value("--queue"));
        if (a.Values("--listen").Count > 0) config.Listen = a.Values("--listen").ToList();
        if (a.Value("--hostname") is { } hostName) config.HostName = hostName;
        var log = new StderrLogger();

        using var store = QueueStore.Open(queuePath, new QueueStoreOptions { JournalRetention = config.JournalRetention });
        using var serverLock = store.TryAcquireServerLock()
            ?? throw new CliException(ExitCodes.TempFail, $"another process already serves the queue at {queuePath}.");
        var sweep = store.Sweep(asServer: true);
        log.Info($"queue {queuePath}: {store.Count()} messages; swept {sweep.TmpRemoved} temporary and {sweep.OrphanBodiesRemoved} orphaned files, {sweep.InterruptedDeliveries.Count} interrupted deliveries");

        var context = new SmtpServerContext(config, store, log);
        await using var listener = new SmtpListener(context);
        try
        {
            listener.Start();
        }
        catch (SmtpListenerException ex)
        {
            throw new CliException(ExitCodes.Failure, ex.Message);
        }
        await using var trigger = new QueueTriggerListener(queuePath);
        await using var scheduler = new DeliveryScheduler(config, store, log, new DeliveryOptions { OwnEndpoints = () => listener.LocalEndpoints });
        log.Info($"serving on {string.Join(", ", listener.LocalEndpoints)} as {config.HostName}" +
                 (a.Flag("--no-delivery") ? ", delivery off" : $", local mail to {scheduler.MaildirRoot}") + " (Ctrl+C or SIGTERM to stop)");
        var delivering = a.Flag("--no-delivery") ? Task.CompletedTask : scheduler.RunAsync(trigger, cancellationToken);
        var stopRequested = Task.Delay(Timeout.Infinite, cancellationToken);
        await Task.WhenAny(stopRequested, a.Flag("--no-delivery") ? stopRequested : delivering);
        int exitCode = ExitCodes.Ok;
        if (delivering.IsFaulted)
        {
            // The scheduler survives failed deliveries; this is the scheduler itself (the spool
            // became unreadable, say). Better to stop than to accept mail nobody delivers.
            log.LogError(delivering.Exception!.GetBaseException(), "the delivery engine failed; stopping");
            exitCode = ExitCodes.TempFail;
        }
        log.Info("stopping");
        // Both at once: the listener finishes the messages it is receiving while the scheduler
        // finishes the deliveries in flight.
        await Task.WhenAll(listener.StopAsync(StopGrace), delivering.ContinueWith(_ => { }, TaskScheduler.Default));
        log.Info("stopped");
        return exitCode;
    }
}
