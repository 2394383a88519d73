using System.Management.Automation;
using System.Net;
using MailOps.Core.Config;
using MailOps.Core.Dns;

namespace MailOps.PowerShell;

/// <summary>
/// Test-MailDomain: what a sending domain must publish for its mail to be accepted (MX, SPF for
/// this server's addresses, each local DKIM key, DMARC, MTA-STS, TLS-RPT, forward-confirmed HELO
/// and PTR), checked against DNS: one object per check with Pass, Warn or Fail, what was found,
/// and the record to publish.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "MailDomain")]
[OutputType(typeof(MailDomainCheck))]
public sealed class TestMailDomainCommand : MailOpsCmdlet
{
    private MailOpsConfig? _config;
    private string? _queue;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Domain { get; set; } = [];

    /// <summary>The addresses mail is sent from (default: the addresses of the configuration's HostName).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public IPAddress[]? Address { get; set; }

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
            var (config, queue) = LoadConfig(ConfigPath, QueuePath);
            if (DnsServer is not null) config.DnsServers = DnsServer.ToList();
            config.Validate("-DnsServer");
            (_config, _queue) = (config, queue);
        }
        catch (ConfigException ex)
        {
            ThrowTerminatingError(Errors.InvalidConfiguration(ex));
        }
    }

    protected override void ProcessRecord()
    {
        var checker = new MailDomainChecker(_config!, _queue);
        foreach (var domain in Domain)
            WriteObject(Bridge(checker.CheckAsync(domain, Address, Cancellation)), enumerateCollection: true);
    }
}
