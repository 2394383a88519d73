namespace MailOps.Core.Config;

/// <summary>
/// Where the queue is (docs/configuration.md QueuePath): an explicit -QueuePath/--queue, else
/// $MAILOPS_QUEUE, else the configuration file's QueuePath, else the per-user default.
/// </summary>
public static class QueueLocation
{
    public const string EnvironmentVariable = "MAILOPS_QUEUE";

    public static string DefaultQueuePath =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify), "mailops", "queue");

    /// <summary>The queue path without a configuration file (what the queue commands use).</summary>
    public static string Resolve(string? explicitPath, string? configuredPath = null)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath)) return Path.GetFullPath(explicitPath);
        string? fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) return Path.GetFullPath(fromEnvironment);
        if (!string.IsNullOrWhiteSpace(configuredPath)) return Path.GetFullPath(configuredPath);
        return DefaultQueuePath;
    }

    /// <summary>The default configuration file of a queue.</summary>
    public static string ConfigPathOf(string queuePath) => Path.Combine(queuePath, "control", "config.json");

    /// <summary>
    /// Loads the configuration and settles the queue path: <paramref name="configPath"/> when given
    /// (must exist), else the queue's own control/config.json (optional).
    /// </summary>
    public static (MailOpsConfig Config, string QueuePath) Load(string? configPath, string? explicitQueuePath)
    {
        if (!string.IsNullOrWhiteSpace(configPath))
        {
            var config = MailOpsConfig.Load(configPath, required: true);
            string queue = Resolve(explicitQueuePath, config.QueuePath);
            config.QueuePath = queue;
            return (config, queue);
        }
        string queuePath = Resolve(explicitQueuePath);
        var fromQueue = MailOpsConfig.Load(ConfigPathOf(queuePath), required: false);
        fromQueue.QueuePath = queuePath;
        // A running server's own settings (its command line may have set them) win for submitters.
        ServedSettings.ApplyTo(fromQueue, queuePath);
        return (fromQueue, queuePath);
    }
}
