using System.Management.Automation;
using System.Net;
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
public sealed class TestMailDomainCommand : DnsLookupCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Domain { get; set; } = [];

    /// <summary>The addresses mail is sent from (default: the addresses of the configuration's HostName).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public IPAddress[]? Address { get; set; }

    protected override void ProcessRecord()
    {
        var checker = new MailDomainChecker(Config, Queue);
        foreach (var domain in Domain)
            WriteObject(Bridge(checker.CheckAsync(domain, Address, Cancellation)), enumerateCollection: true);
    }
}
