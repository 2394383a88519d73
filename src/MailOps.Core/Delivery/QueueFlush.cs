using MailOps.Core.Config;
using MailOps.Core.Queue;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Delivery;

/// <summary>What became of one recipient after a flush.</summary>
public enum FlushOutcome
{
    Delivered,
    Deferred,
    Bounced,
    /// <summary>Not attempted (yet): its destination is down, or the server has not reached it.</summary>
    Waiting,
    /// <summary>The id is not in the queue.</summary>
    NotQueued,
}

/// <summary>One line of a flush report (Send-QueuedMail -Wait, <c>mailops flush --wait</c>).</summary>
public sealed record FlushResult(string Id, string? Recipient, FlushOutcome Outcome, string? Status, string? Host, string? Detail, DateTimeOffset? Time)
{
    /// <summary>The queue the message is in, so a pipeline's next command acts on the same queue.</summary>
    public string? QueuePath { get; init; }
}

/// <summary>The outcome of a flush.</summary>
/// <param name="Served">True when a running server was asked to deliver; false when this process ran the pass itself.</param>
/// <param name="Messages">Messages flushed.</param>
/// <param name="Results">Per-recipient results (empty when a server was only woken, without waiting).</param>
public sealed record FlushReport(bool Served, int Messages, IReadOnlyList<FlushResult> Results);

/// <summary>
/// A flush (qmail's <c>qmail-tcpok; kill -ALRM qmail-send</c>, Postfix's <c>postqueue -f</c>): every
/// selected deferred recipient becomes due now. When a server serves the queue it is woken (and
/// told to retry destinations it marked down); otherwise this process takes the server lock and
/// runs one delivery pass itself, for scheduled jobs. Results are read back from the mail log, so
/// both ways report the same thing.
/// </summary>
public static class QueueFlush
{
    /// <param name="ids">Messages to flush; null for every message with a recipient waiting.</param>
    /// <param name="wait">With a running server: wait until every selected recipient was attempted.</param>
    /// <param name="progress">Recipients attempted so far, out of how many.</param>
    /// <summary>
    /// The same, logging to a <see cref="Hosting.MemoryLog"/>: the signature the PowerShell module
    /// calls, which must not name logging types (they load in the module's own context).
    /// </summary>
    public static Task<FlushReport> RunWithMemoryLogAsync(MailOpsConfig config, QueueStore store, IReadOnlyCollection<string>? ids, bool wait,
        Hosting.MemoryLog log, IProgress<(int Done, int Total)>? progress, CancellationToken cancellationToken) =>
        RunAsync(config, store, ids, wait, (ILogger)log, progress, cancellationToken);

    public static async Task<FlushReport> RunAsync(MailOpsConfig config, QueueStore store, IReadOnlyCollection<string>? ids, bool wait,
        ILogger? logger = null, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        var started = DateTimeOffset.UtcNow.AddMilliseconds(-1);
        var outcomes = new Outcomes(store, started);
        var missing = new List<string>();
        var expected = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var targets = ids?.Distinct(StringComparer.Ordinal).ToList()
                      ?? store.List().Where(m => m.Envelope.Recipients.Any(Waiting)).Select(m => m.Id).ToList();
        foreach (var id in targets)
        {
            try
            {
                var mail = await store.MakeDueAsync(id, cancellationToken).ConfigureAwait(false);
                expected[id] = mail.Envelope.Recipients.Where(Waiting).Select(r => r.Address).ToList();
            }
            catch (QueuedMessageNotFoundException)
            {
                // Flushing everything: a message that left the queue since it was listed (a running
                // server delivered it) is what the caller wanted, not an error. A named id is reported.
                if (ids is not null) missing.Add(id);
            }
        }

        bool served = false;
        for (int round = 0; round < 2; round++)
        {
            using var serverLock = store.IsServed() ? null : store.TryAcquireServerLock();
            served = serverLock is null;
            if (served)
            {
                QueueTrigger.Pull(store.QueuePath, flush: true);
                if (!wait) return new FlushReport(true, expected.Count, missing.Select(NotQueued).Select(r => r with { QueuePath = store.QueuePath }).ToList());
                if (await WaitForAttemptsAsync(store, expected, outcomes, progress, cancellationToken).ConfigureAwait(false)) break;
                // The server went away before it got to everything: deliver the rest here.
                continue;
            }
            if (expected.Count > 0)
            {
                store.Sweep(asServer: true);
                await using var scheduler = new DeliveryScheduler(config, store, logger);
                var pass = scheduler.RunPassAsync(expected.Keys, cancellationToken);
                while (await Task.WhenAny(pass, Task.Delay(500, cancellationToken)).ConfigureAwait(false) != pass)
                    progress?.Report(CountAttempted(store, expected, outcomes));
                await pass.ConfigureAwait(false);
            }
            break;
        }
        var results = new List<FlushResult>();
        results.AddRange(missing.Select(NotQueued));
        outcomes.Read();
        foreach (var (id, recipients) in expected)
        {
            foreach (var rcpt in recipients)
                results.Add(outcomes.Of(id, rcpt) is { } e
                    ? new FlushResult(id, rcpt, e.Event switch
                    {
                        JournalEventType.Delivered => FlushOutcome.Delivered,
                        JournalEventType.Bounced => FlushOutcome.Bounced,
                        _ => FlushOutcome.Deferred,
                    }, e.Status, e.Host, e.Detail, e.Time)
                    : new FlushResult(id, rcpt, FlushOutcome.Waiting, null, null, store.Find(id) is null ? "the message left the queue" : "not attempted yet", null));
        }
        return new FlushReport(served, expected.Count, results.Select(r => r with { QueuePath = store.QueuePath }).ToList());
    }

    private static bool Waiting(EnvelopeRecipient r) => r.State is RecipientState.Pending or RecipientState.Deferred;

    private static FlushResult NotQueued(string id) => new(id, null, FlushOutcome.NotQueued, null, null, "no such message in the queue", null);

    /// <summary>
    /// The last outcome (delivered, deferred, bounced) of each recipient since the flush began, read
    /// from the mail log as it grows: each look reads only the lines appended since the last.
    /// </summary>
    private sealed class Outcomes(QueueStore store, DateTimeOffset since)
    {
        private readonly MailLogTail _tail = MailLog.TailFrom(store.Layout.LogDir, since);
        private readonly Dictionary<(string Id, string Recipient), MailLogEntry> _last = new();

        public void Read()
        {
            foreach (var e in _tail.ReadNew(DateTimeOffset.UtcNow))
                if (e.Time >= since && e.Recipient is { } r && e.Event is JournalEventType.Delivered or JournalEventType.Deferred or JournalEventType.Bounced)
                    _last[(e.Id, r.ToLowerInvariant())] = e;
        }

        public MailLogEntry? Of(string id, string recipient) => _last.GetValueOrDefault((id, recipient.ToLowerInvariant()));
    }

    private static (int Done, int Total) CountAttempted(QueueStore store, Dictionary<string, List<string>> expected, Outcomes outcomes)
    {
        outcomes.Read();
        int done = 0, total = 0;
        foreach (var (id, recipients) in expected)
        {
            total += recipients.Count;
            var envelope = store.ReadEnvelope(id);
            // Gone (delivered, or removed by an operator) or held meanwhile: nothing more will happen to it.
            done += recipients.Count(r => envelope is null || outcomes.Of(id, r) is not null
                || envelope.Recipients.Any(x => x.State == RecipientState.Held && x.Address.Equals(r, StringComparison.OrdinalIgnoreCase)));
        }
        return (done, total);
    }

    /// <summary>
    /// A client waiting on another process: it looks at the mail log twice a second until every
    /// recipient has an outcome (true), or the server stops serving the queue (false).
    /// </summary>
    private static async Task<bool> WaitForAttemptsAsync(QueueStore store, Dictionary<string, List<string>> expected, Outcomes outcomes,
        IProgress<(int Done, int Total)>? progress, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (done, total) = CountAttempted(store, expected, outcomes);
            progress?.Report((done, total));
            if (done >= total) return true;
            if (!store.IsServed()) return CountAttempted(store, expected, outcomes).Done >= total;
            await Task.Delay(500, cancellationToken).ConfigureAwait(false);
        }
    }
}
