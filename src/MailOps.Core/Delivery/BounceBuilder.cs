using MailOps.Core.Queue;
using MimeKit;
using MimeKit.Utils;

namespace MailOps.Core.Delivery;

/// <summary>
/// Non-delivery reports: RFC 3464 delivery-status inside an RFC 6522 multipart/report, built with
/// MimeKit's MultipartReport and MessageDeliveryStatus. The report goes to the envelope sender
/// from the null reverse-path (RFC 5321 §4.5.5, §6.1); it returns the whole message, or only its
/// headers when the sender asked for RET=HDRS.
/// </summary>
public static class BounceBuilder
{
    /// <summary>Messages larger than this come back as headers only, whatever RET said (Postfix's bounce_size_limit does the same).</summary>
    public const long MaxReturnedSize = 10 * 1024 * 1024;

    /// <summary>
    /// The recipients of <paramref name="envelope"/> that call for a failure report: bounced, and
    /// NOTIFY not saying otherwise (RFC 3461 §4.1). None for a bounce: a bounce is never bounced.
    /// </summary>
    public static IReadOnlyList<EnvelopeRecipient> ReportableFailures(Envelope envelope) =>
        envelope.IsBounce
            ? []
            : envelope.Recipients.Where(r => r.State == RecipientState.Bounced && (r.Notify == DsnNotify.Default || r.Notify.HasFlag(DsnNotify.Failure))).ToList();

    /// <summary>True when a finished envelope owes its sender a report (or, for a bounce, a journal line saying none goes).</summary>
    public static bool IsReportDue(Envelope envelope) =>
        ReportableFailures(envelope).Count > 0 || (envelope.IsBounce && envelope.Recipients.Any(r => r.State == RecipientState.Bounced));

    /// <summary>
    /// Queues the report for the bounced recipients of a finished <paramref name="envelope"/> (after
    /// its results were recorded, before it leaves the queue; no lock is held) and journals it. A bounce is never
    /// bounced: that is journaled instead.
    /// </summary>
    /// <returns>The report's queue id, or null when none was due.</returns>
    internal static async Task<string?> QueueAsync(QueueStore store, Envelope envelope, string hostName, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (envelope.IsBounce && envelope.Recipients.Any(r => r.State == RecipientState.Bounced))
        {
            store.AppendJournal(envelope.Id, [JournalEvents.Note(JournalEventType.Bounced, now, "no report sent: the message is itself a bounce (never bounce a bounce)")], envelope);
            return null;
        }
        var failed = ReportableFailures(envelope);
        if (failed.Count == 0) return null;
        var stream = new MemoryStream();
        await using (var original = store.OpenBody(envelope.Id))
        {
            var format = FormatOptions.Default.Clone();
            format.NewLineFormat = NewLineFormat.Dos;
            await Build(envelope, failed, original, hostName, now).WriteToAsync(format, stream, cancellationToken).ConfigureAwait(false);
        }
        stream.Position = 0;
        var bounceEnvelope = EnvelopeFor(envelope, hostName, now);
        bounceEnvelope.EightBit = envelope.EightBit;
        string bounceId = await store.EnqueueAsync(bounceEnvelope, stream, cancellationToken).ConfigureAwait(false);
        store.AppendJournal(envelope.Id, [JournalEvents.Note(JournalEventType.Bounced, now,
            $"delivery status notification for {failed.Count} recipient(s) queued as {bounceId} to <{envelope.Sender}>")], envelope);
        return bounceId;
    }

    /// <summary>
    /// The recipients a delay warning is due for (docs/delivery.md, "Delay warnings"): once the
    /// message has waited <paramref name="after"/>, those still deferred whose NOTIFY does not
    /// exclude DELAY; none for a bounce, none when the warning went already, none when off (0).
    /// </summary>
    public static IReadOnlyList<EnvelopeRecipient> DelayedToWarn(Envelope envelope, DateTimeOffset now, TimeSpan after) =>
        after <= TimeSpan.Zero || envelope.IsBounce || envelope.DelayWarned || now - envelope.Arrived < after
            ? []
            : envelope.Recipients.Where(r => r.State == RecipientState.Deferred && (r.Notify == DsnNotify.Default || r.Notify.HasFlag(DsnNotify.Delay))).ToList();

    /// <summary>Queues the one "delayed" report of <paramref name="envelope"/> for <paramref name="delayed"/> and journals it.</summary>
    /// <returns>The report's queue id.</returns>
    internal static async Task<string> QueueDelayWarningAsync(QueueStore store, Envelope envelope, IReadOnlyList<EnvelopeRecipient> delayed, string hostName, DateTimeOffset now, TimeSpan queueLifetime, CancellationToken cancellationToken)
    {
        var stream = new MemoryStream();
        await using (var original = store.OpenBody(envelope.Id))
        {
            var format = FormatOptions.Default.Clone();
            format.NewLineFormat = NewLineFormat.Dos;
            await Build(envelope, delayed, original, hostName, now, delayedUntil: envelope.Arrived + queueLifetime).WriteToAsync(format, stream, cancellationToken).ConfigureAwait(false);
        }
        stream.Position = 0;
        string reportId = await store.EnqueueAsync(EnvelopeFor(envelope, hostName, now), stream, cancellationToken).ConfigureAwait(false);
        store.AppendJournal(envelope.Id, [JournalEvents.Note(JournalEventType.Deferred, now,
            $"delay warning for {delayed.Count} recipient(s) queued as {reportId} to <{envelope.Sender}>")], envelope);
        return reportId;
    }

    /// <summary>
    /// Builds the report for <paramref name="recipients"/>; <paramref name="original"/> is the stored
    /// message. With <paramref name="delayedUntil"/> it is a delay warning (Action: delayed, the
    /// headers only), else a failure report.
    /// </summary>
    public static MimeMessage Build(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream original, string hostName, DateTimeOffset now, DateTimeOffset? delayedUntil = null)
    {
        bool delayed = delayedUntil is not null;
        var report = new MimeMessage();
        report.From.Add(new MailboxAddress("Mail Delivery System", "MAILER-DAEMON@" + hostName));
        try { report.To.Add(MailboxAddress.Parse(envelope.Sender)); }
        catch (ParseException) { report.Headers.Add("To", "<" + envelope.Sender + ">"); }
        report.Subject = delayed ? "Delayed Mail (still being retried)" : "Undelivered Mail Returned to Sender";
        report.Date = now;
        report.MessageId = MimeUtils.GenerateMessageId(hostName);
        report.Headers.Add("Auto-Submitted", "auto-replied"); // RFC 3834 §5

        var text = new System.Text.StringBuilder();
        text.Append($"This is the mail system at {hostName}.\n\n");
        if (delayed)
        {
            text.Append($"Your message has not been delivered yet to one or more recipients. This is a warning only:\n");
            text.Append($"delivery will be tried until {DateUtils.FormatDate(delayedUntil!.Value)}, and you will hear again only if it fails.\n");
            text.Append("Its headers are attached below. The reasons so far:\n\n");
        }
        else
        {
            text.Append("Your message could not be delivered to one or more recipients.\n");
            text.Append("It is attached below. The reasons:\n\n");
        }
        foreach (var r in recipients) text.Append($"<{r.Address}>: {r.LastError}\n");
        var failed = recipients;

        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList
        {
            { "Reporting-MTA", "dns; " + hostName },
        };
        if (envelope.EnvelopeId is { } envid) perMessage.Add("Original-Envelope-Id", envid);
        perMessage.Add("Arrival-Date", DateUtils.FormatDate(envelope.Arrived));
        status.StatusGroups.Add(perMessage);
        foreach (var r in failed)
        {
            var fields = new HeaderList();
            if (r.OriginalRecipient is { } orcpt) fields.Add("Original-Recipient", orcpt);
            fields.Add("Final-Recipient", "rfc822; " + r.Address);
            fields.Add("Action", delayed ? "delayed" : "failed");
            fields.Add("Status", r.Status ?? (delayed ? "4.0.0" : "5.0.0"));
            if (r.RemoteHost is { } mta && mta != "maildir") fields.Add("Remote-MTA", "dns; " + mta);
            // Diagnostic-Code is a remote server's own words (RFC 3464 §2.3.6); our reasons stay in the text part.
            if (r.LastReply is { } reply) fields.Add("Diagnostic-Code", "smtp; " + reply);
            if (r.Updated is { } last) fields.Add("Last-Attempt-Date", DateUtils.FormatDate(last));
            if (delayedUntil is { } until) fields.Add("Will-Retry-Until", DateUtils.FormatDate(until));
            status.StatusGroups.Add(fields);
        }

        var multipart = new MultipartReport("delivery-status")
        {
            new TextPart("plain") { Text = text.ToString() },
            status,
        };
        original.Position = 0;
        bool headersOnly = delayed || envelope.Return == DsnReturn.Headers || envelope.Size > MaxReturnedSize;
        var returned = MimeMessage.Load(original);
        if (headersOnly)
        {
            var headers = new MimePart("text", "rfc822-headers") { Content = new MimeContent(HeadersOf(returned)) };
            multipart.Add(headers);
        }
        else
        {
            multipart.Add(new MessagePart { Message = returned });
        }
        report.Body = multipart;
        return report;
    }

    private static Stream HeadersOf(MimeMessage message)
    {
        var stream = new MemoryStream();
        message.Headers.WriteTo(stream);
        stream.Position = 0;
        return stream;
    }

    /// <summary>The envelope of the report: from &lt;&gt; to the original sender.</summary>
    public static Envelope EnvelopeFor(Envelope original, string hostName, DateTimeOffset now) => new()
    {
        Arrived = now,
        Sender = "",
        Recipients = [new EnvelopeRecipient { Address = original.Sender, State = RecipientState.Pending }],
        Origin = MessageOrigin.Bounce,
        ClientHelo = hostName,
    };
}
