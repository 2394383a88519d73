using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>
/// <para type="synopsis">Lists the mail waiting in a MailOps queue.</para>
/// <para type="description">Reads the queue's envelopes (never the bodies) and returns QueuedMail objects. Works whether or not a server is running on the queue.</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "MailQueue")]
[OutputType(typeof(QueuedMail))]
public sealed class GetMailQueueCommand : PSCmdlet
{
    /// <summary>The queue directory; default: $env:MAILOPS_QUEUE, else the per-user queue.</summary>
    [Parameter]
    public string? QueuePath { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string[]? Id { get; set; }

    [Parameter]
    public MessageState? State { get; set; }

    protected override void ProcessRecord()
    {
        string path = QueueLocation.Resolve(QueuePath is null ? null : GetUnresolvedProviderPathFromPSPath(QueuePath));
        if (!QueueStore.Exists(path))
        {
            WriteError(new ErrorRecord(new DirectoryNotFoundException($"There is no queue at {path}."), "QueueNotFound", ErrorCategory.ObjectNotFound, path));
            return;
        }
        using var store = QueueStore.Open(path);
        foreach (var mail in store.List(new QueueFilter { Ids = Id, State = State }))
            WriteObject(mail);
    }
}
