using MailOps.Core.Queue;

namespace MailOps.Core.Delivery;

/// <summary>
/// How the results of one delivery change an envelope: attempts are counted, a 2xx is final, a
/// 5xx bounces the recipient, a 4xx defers it to the retry schedule's next time or, once past
/// QueueLifetime, bounces it as expired. Pure: the caller writes the envelope and the journal.
/// </summary>
internal static class DeliveryRecord
{
    /// <returns>The journal lines for what happened, connection events first.</returns>
    public static List<JournalEvent> Apply(Envelope envelope, IReadOnlyList<RecipientResult> results, IReadOnlyList<JournalEvent> connectionEvents,
        DateTimeOffset now, RetryPolicy retry)
    {
        var events = new List<JournalEvent>(connectionEvents);
        foreach (var result in results)
        {
            var r = envelope.Recipients.FirstOrDefault(x => !x.IsFinal && x.Address.Equals(result.Recipient, StringComparison.OrdinalIgnoreCase));
            if (r is null) continue;
            r.Attempts++;
            r.Updated = now;
            r.LastError = result.Outcome == DeliveryOutcome.Delivered ? null : result.Summary;
            r.Status = result.EnhancedCode;
            r.LastReply = result.ReplyCode is not null ? $"{result.ReplyCode} {result.EnhancedCode} {result.Detail}" : null;
            r.RemoteHost = result.Host;
            events.Add(JournalEvents.Attempt(result, now, envelope));
            var outcome = result.Outcome;
            string detail = result.Detail;
            if (outcome == DeliveryOutcome.Deferred)
            {
                if (retry.NextAttempt(envelope.Arrived, r.Attempts, now) is { } next)
                {
                    // A recipient held while its attempt was in flight stays held.
                    if (r.State != RecipientState.Held) r.State = RecipientState.Deferred;
                    r.NextAttempt = next;
                    detail = $"{result.Detail} (next attempt {next:u})";
                }
                else
                {
                    outcome = DeliveryOutcome.Bounced;
                    r.LastError = $"{result.Summary} (gave up: the message is older than QueueLifetime {retry.Lifetime})";
                    events.Add(JournalEvents.Expired(r.Address, now, r.LastError));
                    detail = r.LastError;
                }
            }
            if (outcome != DeliveryOutcome.Deferred)
            {
                r.State = outcome == DeliveryOutcome.Delivered ? RecipientState.Delivered : RecipientState.Bounced;
                r.NextAttempt = null;
            }
            events.Add(JournalEvents.Outcome(outcome switch
            {
                DeliveryOutcome.Delivered => JournalEventType.Delivered,
                DeliveryOutcome.Bounced => JournalEventType.Bounced,
                _ => JournalEventType.Deferred,
            }, result, now, detail));
        }
        return events;
    }
}
