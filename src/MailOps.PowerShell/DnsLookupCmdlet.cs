using System.Management.Automation;
using MailOps.Core.Config;

namespace MailOps.PowerShell;

/// <summary>
/// What the cmdlets that ask DNS about domains share (Resolve-MailExchanger, Test-MailDomain): a
/// queue's configuration, or a configuration file, with -DnsServer instead of its DnsServers.
/// </summary>
public abstract class DnsLookupCmdlet : MailOpsCmdlet
{
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

    /// <summary>The configuration, loaded in BeginProcessing.</summary>
    protected MailOpsConfig Config { get; private set; } = null!;
    /// <summary>The queue whose configuration (and DKIM keys) are used.</summary>
    protected string Queue { get; private set; } = "";

    protected override void BeginProcessing()
    {
        try
        {
            var (config, queue) = LoadConfig(ConfigPath, QueuePath);
            if (DnsServer is not null) config.DnsServers = DnsServer.ToList();
            config.Validate("-DnsServer");
            (Config, Queue) = (config, queue);
        }
        catch (ConfigException ex)
        {
            ThrowTerminatingError(Errors.InvalidConfiguration(ex));
        }
    }
}
