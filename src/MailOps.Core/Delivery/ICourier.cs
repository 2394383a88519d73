using MailOps.Core.Queue;

namespace MailOps.Core.Delivery;

/// <summary>What one delivery of one message to one destination produced.</summary>
/// <param name="Results">One result per recipient attempted.</param>
/// <param name="ConnectionEvents">Journal lines about connecting (hosts tried and why they failed).</param>
/// <param name="DestinationFailed">No host of the destination could be reached: the scheduler backs off from it.</param>
/// <param name="Connected">A remote host took the connection (the destination is up).</param>
public sealed record CourierResult(IReadOnlyList<RecipientResult> Results, IReadOnlyList<JournalEvent> ConnectionEvents, bool DestinationFailed, bool Connected)
{
    public static CourierResult Of(IReadOnlyList<RecipientResult> results) => new(results, [], false, false);
}

/// <summary>
/// Carries one message to its due recipients at one destination (qmail-local and qmail-remote;
/// chasquid's courier): the scheduler decides what and when, a courier only delivers. It never
/// throws for a delivery failure: every recipient gets a result (2xx, 4xx or 5xx).
/// </summary>
public interface ICourier : IAsyncDisposable
{
    Task<CourierResult> DeliverAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken);
}
