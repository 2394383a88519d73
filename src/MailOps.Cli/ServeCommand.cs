using MailOps.Core.Config;
using MailOps.Core.Queue;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops serve</c>: takes the queue's server lock, sweeps crash leftovers, and wakes on the
/// queue trigger. (The SMTP listener and the delivery engine attach here.)
/// </summary>
internal static class ServeCommand
{
    public static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var a = CliArgs.Parse(args, ["--queue", "--config"], []); // --listen arrives with the SMTP listener
        var (config, queuePath) = QueueLocation.Load(a.Value("--config"), a.Value("--queue"));
        using var store = QueueStore.Open(queuePath, new QueueStoreOptions { JournalRetention = config.JournalRetention });
        using var serverLock = store.TryAcquireServerLock()
            ?? throw new CliException(ExitCodes.TempFail, $"another process already serves the queue at {queuePath}.");
        var sweep = store.Sweep(asServer: true);
        Log($"queue {queuePath}: {store.List().Count} messages; swept {sweep.TmpRemoved} temporary and {sweep.OrphanBodiesRemoved} orphaned files, {sweep.InterruptedDeliveries.Count} interrupted deliveries");
        await using var trigger = new QueueTriggerListener(queuePath);
        Log("serving; waiting for the queue trigger (Ctrl+C or SIGTERM to stop)");
        try
        {
            while (true)
            {
                await trigger.WaitAsync(cancellationToken);
                Log($"woken: {store.List().Count} messages queued");
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Log("stopping");
        }
        return ExitCodes.Ok;
    }

    private static void Log(string message) => Console.Error.WriteLine($"{DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss.fff} mailops: {message}");
}
