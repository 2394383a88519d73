using System.Management.Automation;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>Get-MailQueue: the queued mail as QueuedMail objects, or by destination domain with -Summary. Needs no running server.</summary>
[Cmdlet(VerbsCommon.Get, "MailQueue", DefaultParameterSetName = "List")]
[OutputType(typeof(QueuedMail), ParameterSetName = ["List"])]
[OutputType(typeof(QueueDomainSummary), ParameterSetName = ["Summary"])]
public sealed class GetMailQueueCommand : MailOpsCmdlet
{
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string[]? Id { get; set; }

    /// <summary>
    /// Queued, Active, Deferred, Held or Bounced. A string, not MessageState: PowerShell lays out
    /// the cmdlet types before the module's load context can serve MailOps.Core, so no field of
    /// an exported type may be a value type from the engine.
    /// </summary>
    [Parameter]
    [ValidateSet("Queued", "Active", "Deferred", "Held", "Bounced", IgnoreCase = true)]
    public string? State { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Sender { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Recipient { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Domain { get; set; }

    [Parameter]
    public TimeSpan? OlderThan { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Summary")]
    public SwitchParameter Summary { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string? QueuePath { get; set; }

    protected override void ProcessRecord()
    {
        using var store = OpenExistingQueue(QueuePath);
        if (store is null) return;
        var mail = store.List(new QueueFilter { Ids = Id, State = State is null ? null : Enum.Parse<MessageState>(State, ignoreCase: true), Sender = Sender, Recipient = Recipient, Domain = Domain, OlderThan = OlderThan });
        if (Summary) WriteObject(QueueDomainSummary.ByDomain(mail), enumerateCollection: true);
        else WriteObject(mail, enumerateCollection: true);
    }
}
