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

    public static void Add(MailServer server)
    {
        lock (Servers) Servers.Add(server);
    }

    public static void Remove(MailServer server)
    {
        lock (Servers) Servers.Remove(server);
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
        lock (Servers) Servers.Clear();
    }
}
