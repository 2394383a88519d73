using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Delivery.Remote;

namespace MailOps.PowerShell;

/// <summary>
/// Resolve-MailExchanger: the route a domain's mail would take, decided exactly as the delivery
/// engine decides it (Routes, SmartHost, MX, implicit MX, null MX, loops to this server): one
/// row per host in the order tried, or one row saying why the mail would bounce or wait.
/// </summary>
[Cmdlet(VerbsDiagnostic.Resolve, "MailExchanger")]
[OutputType(typeof(MailExchanger))]
public sealed class ResolveMailExchangerCommand : MailOpsCmdlet
{
    private MailOpsConfig? _config;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Domain { get; set; } = [];

    /// <summary>DNS servers as host[:port] (default: the configuration's DnsServers, else the system resolvers).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? DnsServer { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ConfigPath { get; set; }

    protected override void BeginProcessing()
    {
        try
        {
            var config = LoadConfig(ConfigPath, QueuePath).Config;
            if (DnsServer is not null) config.DnsServers = DnsServer.ToList();
            config.Validate("-DnsServer");
            _config = config;
        }
        catch (ConfigException ex)
        {
            ThrowTerminatingError(Errors.InvalidConfiguration(ex));
        }
    }

    protected override void ProcessRecord()
    {
        using var router = MxRouter.ForConfig(_config!);
        foreach (var domain in Domain)
        {
            var route = Bridge(router.RouteAsync(domain.Trim().TrimEnd('.'), Cancellation));
            WriteObject(MailExchanger.From(route), enumerateCollection: true);
        }
    }
}
