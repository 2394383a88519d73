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
    /// Recipients waiting for the domain by their message's age, in Postfix qshape's buckets:
    /// under 5 minutes, 5-10, 10-20, ... 640-1280, and older (<see cref="AgeBuckets"/>).
    /// </summary>
    public IReadOnlyList<int> Ages { get; init; } = new int[AgeBuckets.Count];

    /// <summary>The upper bounds of the <see cref="Ages"/> buckets, in minutes; the last bucket has none.</summary>
    public static IReadOnlyList<int> AgeBucketMinutes { get; } = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

    /// <summary>The column heads of the buckets: "5", "10" ... "1280", "1280+".</summary>
    public static IReadOnlyList<string> AgeBuckets { get; } = [.. AgeBucketMinutes.Select(m => m.ToString(System.Globalization.CultureInfo.InvariantCulture)), "1280+"];

    private static int BucketOf(TimeSpan age)
    {
        for (int i = 0; i < AgeBucketMinutes.Count; i++)
            if (age.TotalMinutes < AgeBucketMinutes[i]) return i;
        return AgeBucketMinutes.Count;
    }

    private static int[] Count(IEnumerable<TimeSpan> ages)
    {
        var counts = new int[AgeBuckets.Count];
        foreach (var age in ages) counts[BucketOf(age)]++;
        return counts;
    }

    /// <summary>
    /// Postfix's qshape as text: one row per domain (TOTAL first), the recipients waiting in each
    /// age bucket, most recipients first; at most <paramref name="top"/> domains.
    /// </summary>
    public static void WriteShape(TextWriter output, IReadOnlyList<QueueDomainSummary> domains, int top = 50)
    {
        int width = Math.Max(6, domains.Take(top).Select(d => d.Domain.Length).DefaultIfEmpty(0).Max());
        var heads = new[] { "T" }.Concat(AgeBuckets).ToList();
        output.WriteLine("".PadLeft(width) + string.Concat(heads.Select(h => h.PadLeft(6))));
        var total = new int[AgeBuckets.Count];
        foreach (var d in domains)
            for (int i = 0; i < total.Length; i++) total[i] += d.Ages[i];
        void Row(string name, IReadOnlyList<int> counts) =>
            output.WriteLine(name.PadLeft(width) + counts.Sum().ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(6)
                + string.Concat(counts.Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(6))));
        Row("TOTAL", total);
        foreach (var d in domains.Take(top)) Row(d.Domain, d.Ages);
    }

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
                Ages = Count(g.Select(x => x.Mail.Age)),
            })
            .OrderByDescending(s => s.Recipients).ThenBy(s => s.Domain, StringComparer.OrdinalIgnoreCase)
            .ToList();
    }
}
