using System.Management.Automation;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>Get-MailQueue: the queued mail as QueuedMail objects, or by destination domain with -Summary. Needs no running server.</summary>
[Cmdlet(VerbsCommon.Get, "MailQueue", DefaultParameterSetName = "List", SupportsPaging = true)]
[OutputType(typeof(QueuedMail), ParameterSetName = ["List"])]
[OutputType(typeof(QueueDomainSummary), ParameterSetName = ["Summary"])]
public sealed class GetMailQueueCommand : MailOpsCmdlet
{
    /// <summary>Queue ids; wildcards (<c>1k18*</c>) match, a literal id that is not queued is a MessageNotFound error.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(QueueIdCompleter))]
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
    [SupportsWildcards]
    public string? Sender { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string? Recipient { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueueDomainCompleter))]
    [SupportsWildcards]
    public string? Domain { get; set; }

    [Parameter]
    public TimeSpan? OlderThan { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Summary")]
    public SwitchParameter Summary { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }

    protected override void ProcessRecord()
    {
        using var store = OpenExistingQueue(QueuePath);
        if (store is null) return;
        var literal = Id?.Where(i => !WildcardPattern.ContainsWildcardCharacters(i)).ToList() ?? [];
        var patterns = Id?.Where(WildcardPattern.ContainsWildcardCharacters).ToList() ?? [];
        var state = State is null ? (MessageState?)null : Enum.Parse<MessageState>(State, ignoreCase: true);
        if (Id is null && !Summary && !PagingParameters.IncludeTotalCount)
        {
            // The common case streams: -First 20 of a long queue reads the first messages only,
            // and Select-Object -First stops the reading.
            var stream = store.Stream(new QueueFilter { State = state, Sender = Sender, Recipient = Recipient, Domain = Domain, OlderThan = OlderThan })
                .Skip((int)Math.Min(PagingParameters.Skip, int.MaxValue));
            if (PagingParameters.First != ulong.MaxValue) stream = stream.Take((int)Math.Min(PagingParameters.First, int.MaxValue));
            foreach (var m in stream)
            {
                if (Stopping) return;
                WriteObject(m);
            }
            return;
        }
        var mail = new List<QueuedMail>();
        if (Id is null || literal.Count > 0)
            mail.AddRange(store.List(new QueueFilter { Ids = Id is null ? null : literal, State = state, Sender = Sender, Recipient = Recipient, Domain = Domain, OlderThan = OlderThan }));
        if (patterns.Count > 0)
        {
            // One listing for all the patterns; literal ids already found are not listed twice.
            mail.AddRange(store.List(new QueueFilter { IdPatterns = patterns, State = state, Sender = Sender, Recipient = Recipient, Domain = Domain, OlderThan = OlderThan }));
            mail = mail.DistinctBy(m => m.Id).OrderBy(m => m.Id, StringComparer.Ordinal).ToList();
        }
        // A literal id names one message: its absence is an error, as for Get-Item. One the
        // listing returned exists; only the others are looked up (filters may hide one that exists).
        var listed = mail.Select(m => m.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var id in literal)
            if (!listed.Contains(id) && store.Find(id) is null) WriteError(Errors.MessageNotFound(new QueuedMessageNotFoundException(id), id));

        if (Summary)
        {
            WriteObject(QueueDomainSummary.ByDomain(mail), enumerateCollection: true);
            return;
        }
        if (PagingParameters.IncludeTotalCount) WriteObject(PagingParameters.NewTotalCount((ulong)mail.Count, 1.0));
        var page = mail.Skip((int)Math.Min(PagingParameters.Skip, int.MaxValue));
        if (PagingParameters.First != ulong.MaxValue) page = page.Take((int)Math.Min(PagingParameters.First, int.MaxValue));
        WriteObject(page, enumerateCollection: true);
    }
}
