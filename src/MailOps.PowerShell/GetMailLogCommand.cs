using System.Management.Automation;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>
/// Get-MailLog: the mail log of a queue (every received, queued, attempt, delivered, deferred,
/// bounced, expired and operator event), searched and returned newest first, as Exchange's
/// Get-MessageTrackingLog. Each entry carries its message's queue id, so
/// <c>Group-Object Id</c> gathers a message's story. Needs no running server.
/// </summary>
[Cmdlet(VerbsCommon.Get, "MailLog")]
[OutputType(typeof(MailLogEntry))]
public sealed class GetMailLogCommand : MailOpsCmdlet
{
    [Parameter]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string? Sender { get; set; }

    /// <summary>An event's recipient, or any recipient of a received or queued event.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string? Recipient { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string? MessageId { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(QueueIdCompleter))]
    public string? Id { get; set; }

    /// <summary>Strings, not JournalEventType: see GetMailQueueCommand.State.</summary>
    [Parameter]
    [ValidateSet("Received", "Queued", "Attempt", "Deferred", "Delivered", "Bounced", "Held", "Released", "MadeDue", "Removed", "PossibleDuplicate", "Expired", IgnoreCase = true)]
    public string[]? Event { get; set; }

    [Parameter]
    public DateTime? Start { get; set; }

    [Parameter]
    public DateTime? End { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }

    protected override void ProcessRecord()
    {
        using var store = OpenExistingQueue(QueuePath);
        if (store is null) return;
        var query = new MailLogQuery
        {
            Sender = Sender, Recipient = Recipient, MessageId = MessageId, Id = Id,
            Events = Event?.Select(e => Enum.Parse<JournalEventType>(e, ignoreCase: true)).ToList(),
            Start = Start is { } start ? new DateTimeOffset(start) : null,
            End = End is { } end ? new DateTimeOffset(end) : null,
        };
        foreach (var entry in MailLog.Search(store.QueuePath, query))
        {
            if (Stopping) return;
            WriteObject(entry);
        }
    }
}
