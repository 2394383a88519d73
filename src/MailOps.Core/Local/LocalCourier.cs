using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Queue;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Local;

/// <summary>
/// Local delivery (qmail-local): each recipient is resolved through Aliases, user-ext and
/// VirtualDomains into Maildirs here and addresses elsewhere; Maildirs are written, and
/// addresses elsewhere get a forwarded copy queued as a new message with the same sender.
/// </summary>
internal sealed class LocalCourier : ICourier
{
    private readonly LocalMailboxes _mailboxes;
    private readonly MaildirDelivery _maildir;
    private readonly QueueStore _store;
    private readonly string _hostName;
    private readonly TimeProvider _clock;
    private readonly ILogger _log;

    public LocalCourier(MailOpsConfig config, QueueStore store, MaildirDelivery maildir, TimeProvider clock, ILogger log)
    {
        _mailboxes = new LocalMailboxes(config);
        _maildir = maildir;
        _store = store;
        _hostName = config.HostName;
        _clock = clock;
        _log = log;
    }

    public async Task<CourierResult> DeliverAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken)
    {
        var results = new List<RecipientResult>(recipients.Count);
        foreach (var r in recipients)
        {
            var target = _mailboxes.Resolve(r.Address);
            if (target.Error is not null && target.Mailboxes.Count == 0 && target.Forwards.Count == 0)
            {
                results.Add(RecipientResult.Local(r.Address, "5.1.1", target.Error, "maildir"));
                continue;
            }
            RecipientResult? worst = null;
            foreach (var mailbox in target.Mailboxes)
            {
                var result = _maildir.Deliver(r.Address, mailbox, envelope.Sender, body);
                if (worst is null || result.Outcome != DeliveryOutcome.Delivered) worst = result;
            }
            if (target.Forwards.Count > 0)
            {
                var forwarded = await ForwardAsync(envelope, r.Address, target.Forwards, body, cancellationToken).ConfigureAwait(false);
                if (worst is null || forwarded.Outcome != DeliveryOutcome.Delivered) worst = forwarded;
            }
            if (target.Error is not null) _log.LogWarning(DeliveryEvents.AliasProblem, "{Recipient}: {Error}", r.Address, target.Error);
            results.Add(worst!);
        }
        return CourierResult.Of(results);
    }

    /// <summary>An alias that points off-site: a new message with the same body and sender (qmail-local's forward).</summary>
    private async Task<RecipientResult> ForwardAsync(Envelope envelope, string recipient, IReadOnlyList<string> forwards, Stream body, CancellationToken cancellationToken)
    {
        var copy = new Envelope
        {
            Arrived = _clock.GetUtcNow(),
            Sender = envelope.Sender,
            Recipients = forwards.Select(f => new EnvelopeRecipient { Address = f }).ToList(),
            Origin = envelope.Origin,
            EightBit = envelope.EightBit,
            SmtpUtf8 = envelope.SmtpUtf8,
            ClientHelo = _hostName,
        };
        try
        {
            body.Position = 0;
            string newId = await _store.EnqueueAsync(copy, body, cancellationToken).ConfigureAwait(false);
            return RecipientResult.Local(recipient, "2.0.0", $"forwarded to {string.Join(", ", forwards.Select(f => "<" + f + ">"))} as {newId}", "alias");
        }
        catch (QueueFailureException ex)
        {
            return RecipientResult.Local(recipient, "4.3.0", "cannot queue the forwarded copy: " + ex.Message, "alias");
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
