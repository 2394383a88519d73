using MailOps.Core.Queue;

namespace MailOps.Core.Delivery;

/// <summary>One job: the recipients of one message that are due at one destination.</summary>
public sealed record PlannedJob(string Destination, IReadOnlyList<EnvelopeRecipient> Recipients);

/// <summary>What a message needs now, and when it next needs anything.</summary>
/// <param name="Jobs">Due recipients, grouped by destination.</param>
/// <param name="NextDue">The earliest future retry; <see cref="DateTimeOffset.MaxValue"/> when nothing falls due by itself (held, or done).</param>
/// <param name="Finished">Every recipient is final: the message only waits to be retired (and its report queued).</param>
public sealed record DeliveryPlan(IReadOnlyList<PlannedJob> Jobs, DateTimeOffset NextDue, bool Finished);

/// <summary>
/// The scheduler's one decision, kept pure so it can be tested on its own: given an envelope and
/// the time, which recipients are due where, and when the message next falls due. The scheduler
/// uses it both when it scans the queue and when a job starts (the due filter exists once).
/// </summary>
public static class DeliveryPlanner
{
    /// <summary>Waiting (pending or deferred) and its next attempt has come.</summary>
    public static bool IsDue(EnvelopeRecipient r, DateTimeOffset now) =>
        r.State is RecipientState.Pending or RecipientState.Deferred && (r.NextAttempt is null || r.NextAttempt <= now);

    /// <param name="envelope">The message as recorded.</param>
    /// <param name="now">The scheduler's clock.</param>
    /// <param name="destinationOf">Recipient domain -> destination key ("local", a route, the smart host, or the domain).</param>
    public static DeliveryPlan Plan(Envelope envelope, DateTimeOffset now, Func<string, string> destinationOf)
    {
        if (envelope.Recipients.Count > 0 && envelope.Recipients.All(r => r.IsFinal))
            return new DeliveryPlan([], DateTimeOffset.MaxValue, Finished: true);
        var nextDue = DateTimeOffset.MaxValue;
        var byDestination = new Dictionary<string, List<EnvelopeRecipient>>(StringComparer.OrdinalIgnoreCase);
        foreach (var r in envelope.Recipients)
        {
            if (r.State is not (RecipientState.Pending or RecipientState.Deferred)) continue;
            if (!IsDue(r, now))
            {
                if (r.NextAttempt!.Value < nextDue) nextDue = r.NextAttempt.Value;
                continue;
            }
            string destination = destinationOf(QueuedMail.DomainOf(r.Address));
            if (!byDestination.TryGetValue(destination, out var list)) byDestination[destination] = list = new List<EnvelopeRecipient>();
            list.Add(r);
        }
        return new DeliveryPlan(byDestination.Select(kv => new PlannedJob(kv.Key, kv.Value)).ToList(), nextDue, Finished: false);
    }

    /// <summary>The recipients of <paramref name="envelope"/> due now at <paramref name="destination"/> (what a job delivers).</summary>
    public static IReadOnlyList<EnvelopeRecipient> DueAt(Envelope envelope, string destination, DateTimeOffset now, Func<string, string> destinationOf) =>
        Plan(envelope, now, destinationOf).Jobs.FirstOrDefault(j => string.Equals(j.Destination, destination, StringComparison.OrdinalIgnoreCase))?.Recipients ?? [];
}
