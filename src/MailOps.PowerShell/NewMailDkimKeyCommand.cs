using System.Management.Automation;
using MailOps.Core.Dkim;

namespace MailOps.PowerShell;

/// <summary>
/// New-MailDkimKey: makes a DKIM signing key for a domain and selector in the queue's
/// control/dkim (0600) and returns it with the TXT record to publish. From then on, mail from that
/// domain submitted locally, by AUTH users or by RelayClients is signed with it.
/// </summary>
[Cmdlet(VerbsCommon.New, "MailDkimKey", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DkimKey))]
public sealed class NewMailDkimKeyCommand : MailOpsCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Domain { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Selector { get; set; } = "";

    /// <summary>Rsa (2048 bits, the default) or Ed25519 (RFC 8463). A string: see GetMailQueueCommand.State.</summary>
    [Parameter]
    [ValidateSet("Rsa", "Ed25519", IgnoreCase = true)]
    public string Algorithm { get; set; } = "Rsa";

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }

    protected override void ProcessRecord()
    {
        if (OwnedQueuePath(QueuePath) is not { } queue) return;
        if (!ShouldProcess($"{Selector}._domainkey.{Domain} in {queue}", "Make a DKIM key")) return;
        var keys = new DkimKeys(queue);
        try
        {
            WriteObject(keys.Generate(Domain, Selector, Enum.Parse<DkimAlgorithm>(Algorithm, ignoreCase: true)));
        }
        catch (ArgumentException ex)
        {
            WriteError(new ErrorRecord(ex, "BadDkimName", ErrorCategory.InvalidArgument, Domain));
        }
        catch (IOException ex) when (keys.List(Domain).Any(k => k.Selector.Equals(Selector, StringComparison.OrdinalIgnoreCase)))
        {
            WriteError(new ErrorRecord(new IOException($"{Selector}._domainkey.{Domain} exists already; choose a new selector to rotate keys.", ex),
                "DkimKeyExists", ErrorCategory.ResourceExists, Selector));
        }
    }
}
