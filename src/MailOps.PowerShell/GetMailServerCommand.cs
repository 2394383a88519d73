using System.Management.Automation;
using MailOps.Core.Hosting;

namespace MailOps.PowerShell;

/// <summary>Get-MailServer: the servers Start-MailServer started in this session.</summary>
[Cmdlet(VerbsCommon.Get, "MailServer")]
[OutputType(typeof(MailServer))]
public sealed class GetMailServerCommand : MailOpsCmdlet
{
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(MailServerIdCompleter))]
    public int[]? Id { get; set; }

    protected override void ProcessRecord()
    {
        var servers = ServerRegistry.All;
        if (Id is null)
        {
            WriteObject(servers, enumerateCollection: true);
            return;
        }
        foreach (int id in Id)
        {
            if (servers.FirstOrDefault(s => s.Id == id) is { } server) WriteObject(server);
            else WriteError(Errors.ServerNotFound(id));
        }
    }
}

/// <summary>The cmdlets that act on servers of this session: piped MailServer objects, or -Id.</summary>
public abstract class MailServerActionCommand : MailOpsCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = "Server")]
    [ValidateNotNull]
    public MailServer[] InputObject { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = "Id")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(MailServerIdCompleter))]
    public int[] Id { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>The servers named by the parameters; an unknown id is a ServerNotFound error and the rest go on.</summary>
    protected IEnumerable<MailServer> Targets() => ParameterSetName switch
    {
        "All" => ServerRegistry.All,
        "Id" => Id.Select(id =>
        {
            var server = ServerRegistry.All.FirstOrDefault(s => s.Id == id);
            if (server is null) WriteError(Errors.ServerNotFound(id));
            return server;
        }).OfType<MailServer>(),
        _ => InputObject,
    };
}

/// <summary>
/// Stop-MailServer: a graceful stop; the messages being received and the deliveries in flight
/// are finished first. A server with open SMTP sessions asks for confirmation unless -Force.
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "MailServer", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "Server")]
[OutputType(typeof(MailServer))]
public sealed class StopMailServerCommand : MailServerActionCommand
{
    /// <summary>Stop every server of this session.</summary>
    [Parameter(Mandatory = true, ParameterSetName = "All")]
    public SwitchParameter All { get; set; }

    /// <summary>Do not ask before stopping a server that has SMTP sessions open.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    private bool _yesToAll, _noToAll;

    protected override void ProcessRecord()
    {
        foreach (var server in Targets()) Stop(server);
    }

    private void Stop(MailServer server)
    {
        if (!ShouldProcess(server.ToString(), "Stop")) return;
        int sessions = server.Sessions;
        if (sessions > 0 && !Force && !ShouldContinue(
                $"Mail server {server.Id} has {sessions} SMTP session(s) open. Messages being received are finished first, but idle clients are disconnected. Stop it?",
                "Stop a busy mail server", ref _yesToAll, ref _noToAll))
            return;
        Bridge(server.StopAsync(), server.Log);
        ServerRegistry.Remove(server);
        if (PassThru) WriteObject(server);
    }
}
