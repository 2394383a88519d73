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

    /// <summary>
    /// The system queue of an installation (docs/install.md): named by system.conf beside the
    /// installed binaries; null for a build that was not installed.
    /// </summary>
    public static string? SystemQueuePath => Submission.DropFile.SystemQueueIn(AppContext.BaseDirectory);

    /// <summary>The queue path without a configuration file (what the queue commands use).</summary>
    /// <param name="explicitPath">--queue / -QueuePath.</param>
    /// <param name="configuredPath">The configuration file's QueuePath.</param>
    /// <param name="client">
    /// For programs that hand in or list mail (not a server): when the user has no per-user queue,
    /// an installation's system queue is the default, as sendmail and mailq are for everyone.
    /// </param>
    public static string Resolve(string? explicitPath, string? configuredPath = null, bool client = false)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath)) return Path.GetFullPath(explicitPath);
        string? fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) return Path.GetFullPath(fromEnvironment);
        if (!string.IsNullOrWhiteSpace(configuredPath)) return Path.GetFullPath(configuredPath);
        if (client && SystemQueuePath is { } system && !Queue.QueueStore.Exists(DefaultQueuePath)) return system;
        return DefaultQueuePath;
    }

    /// <summary>Root acting on a queue another account owns becomes that account first (see <see cref="Queue.Posix.ActAsOwnerOf"/>).</summary>
    public static void ActAsOwnerOf(string queuePath)
    {
        if (OperatingSystem.IsLinux()) Queue.Posix.ActAsOwnerOf(queuePath);
    }

    /// <summary>True for a queue set up to take mail from every local user: it has a maildrop (mailops install makes one).</summary>
    public static bool IsSystemQueue(string queuePath) => Directory.Exists(Path.Combine(queuePath, Submission.DropFile.DirectoryName));

    /// <summary>The default configuration file of a queue.</summary>
    public static string ConfigPathOf(string queuePath) => Path.Combine(queuePath, "control", "config.json");

    /// <summary>
    /// Loads the configuration and settles the queue path: <paramref name="configPath"/> when given
    /// (must exist), else the queue's own control/config.json (optional).
    /// </summary>
    /// <param name="forServer">For a server starting or reloading: the settings a running server published for its submitters (its own) are not read back.</param>
    public static (MailOpsConfig Config, string QueuePath) Load(string? configPath, string? explicitQueuePath, bool client = false, bool forServer = false)
    {
        if (!string.IsNullOrWhiteSpace(configPath))
        {
            var config = MailOpsConfig.Load(configPath, required: true);
            string queue = Resolve(explicitQueuePath, config.QueuePath);
            config.QueuePath = queue;
            return (config, queue);
        }
        string queuePath = Resolve(explicitQueuePath, client: client);
        var fromQueue = MailOpsConfig.Load(ConfigPathOf(queuePath), required: false);
        fromQueue.QueuePath = queuePath;
        // A running server's own settings (its command line may have set them) win for submitters.
        if (!forServer) ServedSettings.ApplyTo(fromQueue, queuePath);
        return (fromQueue, queuePath);
    }
}
