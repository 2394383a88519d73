using System.Text.Json;

namespace MailOps.Core.Config;

/// <summary>
/// What a running server tells the processes that hand mail to its queue (mailops submit,
/// sendmail, Submit-MailMessage): its effective HostName, DefaultDomain, PlusDomain and
/// MaxMessageSize, which may come from its command line rather than the configuration file.
/// Written to <c>&lt;queue&gt;/control/served.json</c> (0600) at start-up, removed at stop, and
/// believed only while the queue's server lock is held, so a crashed server's file is ignored.
/// Nothing secret is in it.
/// </summary>
public sealed class ServedSettings
{
    public string HostName { get; set; } = "";
    public string? DefaultDomain { get; set; }
    public string? PlusDomain { get; set; }
    public long MaxMessageSize { get; set; }

    public static string PathOf(string queuePath) => Path.Combine(queuePath, "control", "served.json");

    /// <summary>Writes the server's settings for its submitters. Failing to write is not fatal: submitters then read the file.</summary>
    public static void Write(string queuePath, MailOpsConfig config)
    {
        var settings = new ServedSettings { HostName = config.HostName, DefaultDomain = config.DefaultDomain, PlusDomain = config.PlusDomain, MaxMessageSize = config.MaxMessageSize };
        string path = PathOf(queuePath), tmp = path + ".tmp";
        try
        {
            using (var f = Queue.DurableFile.OpenPrivate(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
                JsonSerializer.Serialize(f, settings);
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    public static void Remove(string queuePath)
    {
        try { File.Delete(PathOf(queuePath)); } catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>Puts a running server's settings into a submitter's configuration; nothing when no server serves the queue.</summary>
    public static void ApplyTo(MailOpsConfig config, string queuePath)
    {
        string path = PathOf(queuePath);
        if (!File.Exists(path) || !Queue.QueueStore.IsServedAt(queuePath)) return;
        try
        {
            if (JsonSerializer.Deserialize<ServedSettings>(File.ReadAllBytes(path)) is not { HostName.Length: > 0 } served) return;
            config.HostName = served.HostName;
            config.DefaultDomain = served.DefaultDomain;
            config.PlusDomain = served.PlusDomain;
            if (served.MaxMessageSize > 0) config.MaxMessageSize = served.MaxMessageSize;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException) { }
    }
}
