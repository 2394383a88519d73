using MimeKit;

namespace MailOps.Core.Delivery.Remote;

/// <summary>
/// A stored message handed to MailKit's SmtpClient so that it goes out exactly as it was queued:
/// nothing is parsed or re-encoded. MimeKit writes a message as its header fields, an empty line,
/// then the body; here the whole stored header block rides as the raw value of its first field,
/// and the body is a part that copies the stored octets after the empty line. The part's own
/// MIME headers are hidden by <see cref="Format"/>; its Content-Transfer-Encoding still tells
/// MailKit to send BODY=8BITMIME for an 8-bit message. MailKit dot-stuffs on the way out.
/// Our own ingest always stores a Received field first, so the first field is never one of the
/// hidden ones.
/// </summary>
internal static class RawMessage
{
    /// <summary>The options to send a raw message with.</summary>
    public static readonly FormatOptions Format = CreateFormat();

    private static FormatOptions CreateFormat()
    {
        var format = FormatOptions.Default.Clone();
        format.HiddenHeaders.Add(HeaderId.ContentType);
        format.HiddenHeaders.Add(HeaderId.ContentTransferEncoding);
        format.HiddenHeaders.Add(HeaderId.MimeVersion);
        return format;
    }

    /// <summary>Wraps <paramref name="body"/> (open, seekable, positioned anywhere); the stream must stay open while the message is sent.</summary>
    public static MimeMessage Create(Stream body, bool eightBit)
    {
        // Not new MimeMessage(): that one fills in a Date, a Message-Id (a host name lookup) and more,
        // only to be cleared; a fifth of the CPU of making this wrapper on every delivery.
        var message = new MimeMessage((IEnumerable<Header>)Array.Empty<Header>());
        message.Headers.Clear();
        var headerBlock = StoredMessage.ReadHeaderBlock(body);
        long bodyOffset = 0;
        if (headerBlock is { Length: > 0 } && FirstFieldName(headerBlock) is { } name)
        {
            var header = new Header(name, "x");
            header.SetRawValue(headerBlock[(name.Length + 1)..]);
            message.Headers.Add(header);
            bodyOffset = headerBlock.Length + 2;
        }
        else if (headerBlock is { Length: 0 })
        {
            bodyOffset = 2; // no header at all: the message starts with its empty line, which MimeKit writes
        }
        // Else (no empty line within reach, or a first line that is not a field, which our own
        // ingest never stores): the whole message is sent as the body after an empty line.
        message.Body = new RawBody(body, bodyOffset, eightBit);
        return message;
    }

    private static string? FirstFieldName(byte[] headerBlock)
    {
        int colon = Array.IndexOf(headerBlock, (byte)':');
        int lineEnd = Array.IndexOf(headerBlock, (byte)'\r');
        if (colon <= 0 || (lineEnd >= 0 && colon > lineEnd)) return null;
        for (int i = 0; i < colon; i++)
            if (headerBlock[i] is <= 32 or >= 127) return null; // RFC 5322 ftext
        return System.Text.Encoding.ASCII.GetString(headerBlock, 0, colon);
    }

    private sealed class RawBody : MimePart
    {
        private readonly Stream _source;
        private readonly long _offset;

        public RawBody(Stream source, long offset, bool eightBit) : base("application", "octet-stream")
        {
            _source = source;
            _offset = offset;
            Headers.Clear();
            // Hidden when written (Format); read by MailKit to choose BODY=8BITMIME.
            ContentTransferEncoding = eightBit ? ContentEncoding.EightBit : ContentEncoding.SevenBit;
        }

        public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            _source.Position = _offset;
            _source.CopyTo(stream, 64 * 1024);
        }

        public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            _source.Position = _offset;
            await _source.CopyToAsync(stream, 64 * 1024, cancellationToken).ConfigureAwait(false);
        }
    }
}
