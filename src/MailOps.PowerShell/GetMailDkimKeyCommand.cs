using System.Management.Automation;
using MailOps.Core.Dkim;

namespace MailOps.PowerShell;

/// <summary>Get-MailDkimKey: the queue's DKIM keys, with the TXT records to publish.</summary>
[Cmdlet(VerbsCommon.Get, "MailDkimKey")]
[OutputType(typeof(DkimKey))]
public sealed class GetMailDkimKeyCommand : MailOpsCmdlet
{
    /// <summary>Only these domains (all when omitted).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[]? Domain { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }

    protected override void ProcessRecord()
    {
        if (OwnedQueuePath(QueuePath) is not { } queue) return;
        var keys = new DkimKeys(queue);
        foreach (var domain in Domain ?? [null!])
            foreach (var key in keys.List(domain)) WriteObject(key);
    }
}
