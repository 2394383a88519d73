using MailOps.Core.Queue;

namespace MailOps.Core.Delivery.Remote;

/// <summary>
/// Delivery over SMTP (qmail-remote): routes the recipients' domain (Routes, SmartHost, MX) and
/// sends over one <see cref="RemoteSession"/>, which the courier keeps for the worker's next
/// message to the same host.
/// </summary>
internal sealed class RemoteCourier : ICourier
{
    private readonly MxRouter _router;
    private readonly RemoteSession _session;

    public RemoteCourier(MxRouter router, string helo, TimeProvider clock)
    {
        _router = router;
        _session = new RemoteSession(helo, clock, router.Trust);
    }

    public async Task<CourierResult> DeliverAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken)
    {
        var route = await _router.RouteAsync(QueuedMail.DomainOf(recipients[0].Address), cancellationToken).ConfigureAwait(false);
        switch (route.Kind)
        {
            case RouteKind.Remote:
                var attempt = await _session.DeliverAsync(route, envelope, recipients, body, cancellationToken).ConfigureAwait(false);
                return new CourierResult(attempt.Results, attempt.ConnectionEvents, attempt.DestinationFailed, !attempt.DestinationFailed);
            case RouteKind.Defer:
                return new CourierResult(recipients.Select(r => RecipientResult.Local(r.Address, route.Status!, route.Reason!)).ToList(), [], true, false);
            default: // Bounce; Local cannot happen (local domains have their own destination)
                return CourierResult.Of(recipients.Select(r => RecipientResult.Local(r.Address, route.Status ?? "5.4.4", route.Reason ?? "no route")).ToList());
        }
    }

    public ValueTask DisposeAsync() => _session.DisposeAsync();
}
