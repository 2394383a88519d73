using System.Management.Automation;
using MailOps.Core.Delivery.Remote;

namespace MailOps.PowerShell;

/// <summary>
/// Resolve-MailExchanger: the route a domain's mail would take, decided exactly as the delivery
/// engine decides it (Routes, SmartHost, MX, implicit MX, null MX, loops to this server): one
/// row per host in the order tried, or one row saying why the mail would bounce or wait.
/// </summary>
[Cmdlet(VerbsDiagnostic.Resolve, "MailExchanger")]
[OutputType(typeof(MailExchanger))]
public sealed class ResolveMailExchangerCommand : DnsLookupCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Domain { get; set; } = [];

    protected override void ProcessRecord()
    {
        using var router = MxRouter.ForConfig(Config);
        foreach (var domain in Domain)
        {
            var route = Bridge(router.RouteAsync(domain.Trim().TrimEnd('.'), Cancellation));
            WriteObject(MailExchanger.From(route), enumerateCollection: true);
        }
    }
}
