using MailOps.Core.Queue;

namespace MailOps.Core.Delivery;

/// <summary>
/// <c>Remove-QueuedMail -Bounce</c> (Postfix's <c>postsuper -r</c> then a bounce; qmail has none):
/// the recipients still waiting are failed with 5.0.0 and the reason, the sender gets a delivery
/// status notification for them (NOTIFY permitting), and the message leaves the queue.
/// </summary>
public static class OperatorBounce
{
    /// <returns>The message as it was before.</returns>
    /// <exception cref="QueuedMessageNotFoundException">Not queued.</exception>
    public static async Task<QueuedMail> BounceAndRemoveAsync(QueueStore store, string hostName, string id, string reason, CancellationToken cancellationToken = default)
    {
        if (!QueueId.IsValid(id)) throw new QueuedMessageNotFoundException(id);
        var before = store.Find(id) ?? throw new QueuedMessageNotFoundException(id);
        var now = store.Clock.GetUtcNow();
        var recorded = await store.RecordAsync(id, envelope =>
        {
            var events = new List<JournalEvent>();
            foreach (var r in envelope.Recipients.Where(r => !r.IsFinal))
            {
                r.State = RecipientState.Bounced;
                r.Status = "5.0.0";
                r.LastError = "5.0.0 " + reason;
                r.RemoteHost = null;
                r.Updated = now;
                events.Add(JournalEvents.Operator(JournalEventType.Removed, now, r.Address, reason, "5.0.0"));
            }
            return events;
        }, BounceBuilder.IsReportDue, cancellationToken).ConfigureAwait(false);
        if (recorded is null) throw new QueuedMessageNotFoundException(id);
        await store.FinishAsync(id, (envelope, ct) => BounceBuilder.QueueAsync(store, envelope, hostName, now, ct), cancellationToken).ConfigureAwait(false);
        QueueTrigger.Pull(store.QueuePath);
        return before;
    }
}
