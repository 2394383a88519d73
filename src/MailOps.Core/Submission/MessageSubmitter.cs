using System.Text;
using MailOps.Core.Addressing;
using MailOps.Core.Queue;
using MimeKit;
using MimeKit.Utils;

namespace MailOps.Core.Submission;

/// <summary>How a submission failed; the CLI maps these to sysexits (64, 65, 75).</summary>
public enum SubmissionErrorKind
{
    /// <summary>The caller's arguments are wrong (EX_USAGE).</summary>
    Usage,
    /// <summary>The message itself is unacceptable (EX_DATAERR).</summary>
    BadMessage,
    /// <summary>Try again later: the queue could not take it (EX_TEMPFAIL).</summary>
    Temporary,
}

public sealed class SubmissionException(SubmissionErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public SubmissionErrorKind Kind { get; } = kind;
}

/// <summary>A local submission: the envelope as given by sendmail-style arguments.</summary>
public sealed class SubmissionRequest
{
    /// <summary>-f: envelope sender. "" or "&lt;&gt;" is the null sender. Default: the user at DefaultDomain.</summary>
    public string? Sender { get; init; }
    /// <summary>-F: full name for a From: header we add.</summary>
    public string? FullName { get; init; }
    public IReadOnlyList<string> Recipients { get; init; } = [];
    /// <summary>-t: recipients also from To:, Cc:, Bcc: (Bcc: is removed).</summary>
    public bool RecipientsFromHeaders { get; init; }
    /// <summary>Without -i/-oi, sendmail ends input at a line holding a single dot.</summary>
    public bool DotEndsInput { get; init; }
    public MessageOrigin Origin { get; init; } = MessageOrigin.Submit;
    public required string HostName { get; init; }
    public required string DefaultDomain { get; init; }
    public string? PlusDomain { get; init; }
    public string UserName { get; init; } = Environment.UserName;
    public long MaxMessageSize { get; init; } = 35L * 1024 * 1024;

    /// <summary>A sendmail command line, by <paramref name="userName"/>, for a queue configured by <paramref name="config"/>.</summary>
    public static SubmissionRequest FromSendmail(SendmailArgs args, Config.MailOpsConfig config, string userName) => new()
    {
        Sender = args.Sender,
        FullName = args.FullName,
        Recipients = args.Recipients,
        RecipientsFromHeaders = args.ExtractRecipients,
        DotEndsInput = !args.IgnoreDots,
        Origin = MessageOrigin.Sendmail,
        HostName = config.HostName,
        DefaultDomain = config.EffectiveDefaultDomain,
        PlusDomain = config.PlusDomain,
        MaxMessageSize = config.MaxMessageSize,
        UserName = userName,
    };
}

/// <summary>
/// Turns a message from a local program (stdin of sendmail or `mailops submit`, or a file) into a
/// queued message: checks it is an RFC 5322 message, settles the envelope, adds the headers a
/// submission must carry (Received, Date, Message-ID, From), turns bare LF into CRLF, and streams
/// the body into the queue. The header block is held in memory (at most 1 MiB); the body never is.
/// </summary>
public static class MessageSubmitter
{
    private const int MaxHeaderBlock = 1024 * 1024;
    private const int MaxHeaderLine = 8 * 1024;

    /// <returns>The queue id.</returns>
    /// <exception cref="SubmissionException">With the kind that says whose fault it is. Nothing was queued.</exception>
    public static async Task<string> SubmitAsync(QueueStore store, Stream input, SubmissionRequest request, CancellationToken cancellationToken = default) =>
        (await SubmitEnvelopeAsync(store, input, request, cancellationToken).ConfigureAwait(false)).Id;

    /// <returns>The envelope as committed (its Id set): what was queued, even if a server has delivered it since.</returns>
    /// <exception cref="SubmissionException">With the kind that says whose fault it is. Nothing was queued.</exception>
    public static async Task<Envelope> SubmitEnvelopeAsync(QueueStore store, Stream input, SubmissionRequest request, CancellationToken cancellationToken = default)
    {
        string sender = ResolveSender(request);
        var recipients = new List<EnvelopeAddress>();
        foreach (var r in request.Recipients) recipients.Add(ParseAddress(r, request, SubmissionErrorKind.Usage, "recipient"));

        var reader = new LineSegmentReader(input);
        var header = await ReadHeaderAsync(reader, cancellationToken).ConfigureAwait(false);
        if (request.RecipientsFromHeaders)
        {
            foreach (var field in header.Fields.Where(f => f.Is("To") || f.Is("Cc") || f.Is("Bcc")))
                foreach (var mailbox in ParseMailboxes(field))
                    recipients.Add(ParseAddress(mailbox, request, SubmissionErrorKind.BadMessage, field.Name + ": address"));
        }
        recipients = recipients.DistinctBy(a => a.ToString()).ToList();
        if (recipients.Count == 0)
            throw new SubmissionException(SubmissionErrorKind.Usage,
                request.RecipientsFromHeaders ? "No recipients: none on the command line and none in To:, Cc: or Bcc:." : "No recipients given (name them as arguments, or use -t).");

        try
        {
            await using var message = store.CreateMessage();
            var envelope = new Envelope
            {
                Sender = sender,
                Origin = request.Origin,
                Recipients = recipients.Select(a => new EnvelopeRecipient { Address = a.ToString() }).ToList(),
                SmtpUtf8 = recipients.Any(a => a.IsInternational) || sender.Any(c => c > 127),
            };
            var now = store.Clock.GetUtcNow();
            var body = message.Body;
            await body.WriteAsync(Encoding.UTF8.GetBytes(
                $"Received: by {request.HostName} (MailOps, from userid {Sanitize(request.UserName)})\r\n\tid {message.Id}; {DateUtils.FormatDate(now)}\r\n"), cancellationToken).ConfigureAwait(false);
            foreach (var field in header.Fields)
            {
                if (field.Is("Bcc")) continue; // never disclosed to the other recipients
                await body.WriteAsync(field.Raw, cancellationToken).ConfigureAwait(false);
            }
            var added = new StringBuilder();
            if (!header.Has("From"))
            {
                string from = sender.Length == 0 ? $"MAILER-DAEMON@{request.DefaultDomain}" : sender;
                added.Append("From: ").Append(request.FullName is { Length: > 0 } name ? new MailboxAddress(Sanitize(name), from).ToString(FormatOptions.Default, true) : from).Append("\r\n");
            }
            if (!header.Has("Date")) added.Append("Date: ").Append(DateUtils.FormatDate(now)).Append("\r\n");
            if (!header.Has("Message-ID")) added.Append("Message-ID: <").Append(message.Id).Append('@').Append(request.HostName).Append(">\r\n");
            added.Append("\r\n");
            await body.WriteAsync(Encoding.UTF8.GetBytes(added.ToString()), cancellationToken).ConfigureAwait(false);

            bool eightBit = header.EightBit;
            if (!header.EndedAtEof) eightBit |= await CopyBodyAsync(reader, body, request, message, cancellationToken).ConfigureAwait(false);
            envelope.EightBit = eightBit;
            if (message.Length > request.MaxMessageSize)
                throw new SubmissionException(SubmissionErrorKind.BadMessage, $"Message is {message.Length} octets, over the limit of {request.MaxMessageSize}.");
            // Local submission is a trusted source: signed when the From: domain has a DKIM key.
            await message.SignDkimAsync(new Dkim.DkimKeys(store.QueuePath), cancellationToken).ConfigureAwait(false);
            await message.CommitAsync(envelope, cancellationToken).ConfigureAwait(false);
            return envelope;
        }
        catch (QueueFailureException ex)
        {
            throw new SubmissionException(ex.IsTransient ? SubmissionErrorKind.Temporary : SubmissionErrorKind.BadMessage, ex.Message, ex);
        }
        catch (IOException ex)
        {
            // Writing the spool failed (a full disk, most often); the message was abandoned whole.
            throw new SubmissionException(SubmissionErrorKind.Temporary, $"Cannot write to the queue: {ex.Message}", ex);
        }
    }

    private static string ResolveSender(SubmissionRequest request)
    {
        if (request.Sender is null) return ParseAddress(request.UserName, request, SubmissionErrorKind.Usage, "sender").ToString();
        string s = request.Sender.Trim();
        if (s is "" or "<>") return "";
        return ParseAddress(s, request, SubmissionErrorKind.Usage, "sender").ToString();
    }

    private static EnvelopeAddress ParseAddress(string text, SubmissionRequest request, SubmissionErrorKind kind, string what)
    {
        if (EnvelopeAddress.TryParseCompleting(text, request.DefaultDomain, request.PlusDomain, out var address, out var error))
            return address!;
        throw new SubmissionException(kind, $"Bad {what} '{text}': {error}.");
    }

    private static IEnumerable<string> ParseMailboxes(HeaderField field)
    {
        if (!InternetAddressList.TryParse(field.Value, out var list))
            throw new SubmissionException(SubmissionErrorKind.BadMessage, $"Cannot parse the addresses in {field.Name}: {field.Value.Trim()}");
        return list.Mailboxes.Select(m => m.Address);
    }

    private static string Sanitize(string s) => new(s.Where(c => !char.IsControl(c)).ToArray());

    // ------------------------------------------------------------------ header block

    private sealed class HeaderField(string name)
    {
        public string Name { get; } = name;
        public MemoryStream RawBuilder { get; } = new();
        public byte[] Raw => RawBuilder.ToArray();
        /// <summary>The unfolded value, decoded as UTF-8.</summary>
        public string Value
        {
            get
            {
                string all = Encoding.UTF8.GetString(RawBuilder.GetBuffer(), 0, (int)RawBuilder.Length);
                return all[(all.IndexOf(':') + 1)..].Replace("\r\n", "");
            }
        }
        public bool Is(string other) => Name.Equals(other, StringComparison.OrdinalIgnoreCase);
    }

    private sealed class HeaderBlock
    {
        public List<HeaderField> Fields { get; } = new();
        public bool EndedAtEof { get; set; }
        public bool EightBit { get; set; }
        public bool Has(string name) => Fields.Any(f => f.Is(name));
    }

    private static async Task<HeaderBlock> ReadHeaderAsync(LineSegmentReader reader, CancellationToken cancellationToken)
    {
        var block = new HeaderBlock();
        int lineNumber = 0;
        while (true)
        {
            var segment = await reader.ReadAsync(MaxHeaderLine, cancellationToken).ConfigureAwait(false);
            if (segment.IsEmpty)
            {
                if (lineNumber == 0) throw new SubmissionException(SubmissionErrorKind.BadMessage, "Empty input: there is no message to send.");
                block.EndedAtEof = true;
                return block;
            }
            if (!segment.EndsLine && segment.Bytes.Length == MaxHeaderLine)
                throw new SubmissionException(SubmissionErrorKind.BadMessage, $"Header line {lineNumber + 1} is longer than {MaxHeaderLine} octets.");
            if (reader.Position > MaxHeaderBlock)
                throw new SubmissionException(SubmissionErrorKind.BadMessage, $"The header block is larger than {MaxHeaderBlock} octets.");
            lineNumber++;
            var line = TrimEol(segment.Bytes.Span);
            if (line.IndexOf((byte)0) >= 0)
                throw new SubmissionException(SubmissionErrorKind.BadMessage, $"Line {lineNumber} contains a NUL octet: not an RFC 5322 message.");
            // A CR that ends no line is how header injection slips a field past a program that
            // splits on CRLF only (a Bcc: inside a Subject:); RFC 5322 allows CR only before LF.
            if (line.IndexOf((byte)'\r') >= 0)
                throw new SubmissionException(SubmissionErrorKind.BadMessage, $"Header line {lineNumber} contains a bare CR: not an RFC 5322 header.");
            if (line.Length == 0) return block; // the blank line between header and body
            if (lineNumber == 1 && line.StartsWith("From "u8)) continue; // an mbox separator, as sendmail strips it

            if (line[0] is (byte)' ' or (byte)'\t')
            {
                if (block.Fields.Count == 0)
                    throw new SubmissionException(SubmissionErrorKind.BadMessage, "Line 1 is a continuation line: not an RFC 5322 message.");
                AppendLine(block.Fields[^1], line);
            }
            else
            {
                int colon = line.IndexOf((byte)':');
                if (colon <= 0 || !IsFieldName(line[..colon]))
                    throw new SubmissionException(SubmissionErrorKind.BadMessage,
                        $"Line {lineNumber} is not a header field (\"name: value\"): not an RFC 5322 message. End the header with an empty line before the body.");
                var field = new HeaderField(Encoding.ASCII.GetString(line[..colon]).TrimEnd());
                AppendLine(field, line);
                block.Fields.Add(field);
            }
            foreach (byte b in line) if (b > 127) { block.EightBit = true; break; }
        }
    }

    private static void AppendLine(HeaderField field, ReadOnlySpan<byte> line)
    {
        field.RawBuilder.Write(line);
        field.RawBuilder.Write("\r\n"u8);
    }

    private static bool IsFieldName(ReadOnlySpan<byte> name)
    {
        name = name.TrimEnd((byte)' '); // tolerate "Subject :" (obsolete syntax, RFC 5322 section 4.5)
        if (name.IsEmpty) return false;
        foreach (byte b in name) if (b < 33 || b > 126) return false;
        return true;
    }

    private static ReadOnlySpan<byte> TrimEol(ReadOnlySpan<byte> line)
    {
        if (line.EndsWith("\r\n"u8)) return line[..^2];
        if (line.EndsWith("\n"u8)) return line[..^1];
        return line;
    }

    // ------------------------------------------------------------------ body

    /// <summary>Copies the body, bare LF to CRLF, ending at EOF or (sendmail without -i) a lone-dot line.</summary>
    /// <returns>True when the body has 8-bit octets.</returns>
    private static async Task<bool> CopyBodyAsync(LineSegmentReader reader, Stream body, SubmissionRequest request, IncomingMessage message, CancellationToken cancellationToken)
    {
        bool eightBit = false, previousEndedWithCr = false, lastEndedLine = true;
        byte[] crlf = "\r\n"u8.ToArray();
        while (true)
        {
            var segment = await reader.ReadAsync(16 * 1024, cancellationToken).ConfigureAwait(false);
            if (segment.IsEmpty)
            {
                // Every stored message ends with CRLF, as it will on the wire.
                if (!lastEndedLine) await body.WriteAsync(crlf, cancellationToken).ConfigureAwait(false);
                return eightBit;
            }
            lastEndedLine = segment.EndsLine;
            var bytes = segment.Bytes;
            if (request.DotEndsInput && segment.StartsLine && segment.EndsLine && TrimEol(bytes.Span) is [(byte)'.'])
                return eightBit;
            if (!eightBit) foreach (byte b in bytes.Span) if (b > 127) { eightBit = true; break; }

            if (segment.EndsLine)
            {
                bool hasCr = bytes.Length >= 2 ? bytes.Span[^2] == '\r' : previousEndedWithCr;
                if (hasCr) await body.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
                else
                {
                    await body.WriteAsync(bytes[..^1], cancellationToken).ConfigureAwait(false);
                    await body.WriteAsync(crlf, cancellationToken).ConfigureAwait(false);
                }
                previousEndedWithCr = false;
            }
            else
            {
                await body.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
                previousEndedWithCr = bytes.Span[^1] == '\r';
            }
            if (message.Length > request.MaxMessageSize)
                throw new SubmissionException(SubmissionErrorKind.BadMessage, $"Message is over the limit of {request.MaxMessageSize} octets.");
        }
    }
}
