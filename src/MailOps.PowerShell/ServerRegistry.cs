using MailOps.Core.Hosting;

namespace MailOps.PowerShell;

/// <summary>
/// The servers started by Start-MailServer in this PowerShell process (what Get-MailServer
/// lists). A server leaves the list when Stop-MailServer stops it; one that failed stays, so
/// that its Error can be read.
/// </summary>
internal static class ServerRegistry
{
    private static readonly List<MailServer> Servers = new();
    /// <summary>How each server's configuration is read again (its file and its Start-MailServer parameters), for Update-MailServer.</summary>
    private static readonly Dictionary<MailServer, Func<MailOps.Core.Config.MailOpsConfig>> Loaders = new();

    public static void Add(MailServer server, Func<MailOps.Core.Config.MailOpsConfig> load)
    {
        lock (Servers)
        {
            Servers.Add(server);
            Loaders[server] = load;
        }
    }

    public static void Remove(MailServer server)
    {
        lock (Servers)
        {
            Servers.Remove(server);
            Loaders.Remove(server);
        }
    }

    /// <summary>Reads <paramref name="server"/>'s configuration again, as Start-MailServer first read it.</summary>
    public static MailOps.Core.Config.MailOpsConfig? LoadAgain(MailServer server)
    {
        Func<MailOps.Core.Config.MailOpsConfig>? load;
        lock (Servers) Loaders.TryGetValue(server, out load);
        return load?.Invoke();
    }

    public static IReadOnlyList<MailServer> All
    {
        get { lock (Servers) return Servers.ToList(); }
    }

    /// <summary>When the module is removed: every server stops gracefully.</summary>
    public static void StopAll()
    {
        var all = All;
        Task.WhenAll(all.Select(s => s.StopAsync())).GetAwaiter().GetResult();
        lock (Servers)
        {
            Servers.Clear();
            Loaders.Clear();
        }
    }
}
