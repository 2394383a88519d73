namespace MailOps.Core.Queue;

/// <summary>
/// The queue seen by destination domain (<c>Get-MailQueue -Summary</c>, Postfix's <c>qshape</c>):
/// how many recipients wait for each domain, in which state, and for how long.
/// </summary>
public sealed class QueueDomainSummary
{
    public required string Domain { get; init; }
    /// <summary>Messages with at least one recipient waiting for the domain.</summary>
    public int Messages { get; init; }
    /// <summary>Recipients waiting for the domain.</summary>
    public int Recipients { get; init; }
    public int Queued { get; init; }
    public int Active { get; init; }
    public int Deferred { get; init; }
    public int Held { get; init; }
    /// <summary>Octets of the messages counted (a message for two domains counts in both).</summary>
    public long Size { get; init; }
    public TimeSpan OldestAge { get; init; }
    public DateTimeOffset? NextAttempt { get; init; }
    /// <summary>The last error reported for a recipient of the domain.</summary>
    public string? LastError { get; init; }

    /// <summary>
    /// Groups <paramref name="messages"/> by the domains of their waiting recipients, the domain
    /// with most recipients first. A recipient's state is its message's (Held, Active), or
    /// Deferred/Queued from the recipient itself.
    /// </summary>
    public static IReadOnlyList<QueueDomainSummary> ByDomain(IEnumerable<QueuedMail> messages)
    {
        var rows = from m in messages
                   from r in m.Envelope.Recipients
                   where !r.IsFinal
                   let state = m.Kind is MessageState.Held or MessageState.Active ? m.Kind
                       : r.State == RecipientState.Deferred ? MessageState.Deferred : MessageState.Queued
                   select (Mail: m, Recipient: r, Domain: QueuedMail.DomainOf(r.Address), State: state);
        return rows
            .GroupBy(x => x.Domain, StringComparer.OrdinalIgnoreCase)
            .Select(g => new QueueDomainSummary
            {
                Domain = g.Key,
                Messages = g.Select(x => x.Mail.Id).Distinct().Count(),
                Recipients = g.Count(),
                Queued = g.Count(x => x.State == MessageState.Queued),
                Active = g.Count(x => x.State == MessageState.Active),
                Deferred = g.Count(x => x.State == MessageState.Deferred),
                Held = g.Count(x => x.State == MessageState.Held),
                Size = g.DistinctBy(x => x.Mail.Id).Sum(x => x.Mail.Size),
                OldestAge = g.Max(x => x.Mail.Age),
                NextAttempt = g.Where(x => x.State != MessageState.Held).Min(x => x.Recipient.NextAttempt),
                LastError = g.Where(x => x.Recipient.LastError is not null).OrderByDescending(x => x.Recipient.Updated).Select(x => x.Recipient.LastError).FirstOrDefault(),
            })
            .OrderByDescending(s => s.Recipients).ThenBy(s => s.Domain, StringComparer.OrdinalIgnoreCase)
            .ToList();
    }
}
