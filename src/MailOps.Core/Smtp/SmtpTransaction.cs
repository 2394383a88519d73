using MailOps.Core.Queue;

namespace MailOps.Core.Smtp;

/// <summary>One mail transaction: from MAIL to the end of DATA or BDAT LAST (or RSET).</summary>
internal sealed class SmtpTransaction : IAsyncDisposable
{
    public required string Sender { get; init; }
    public List<EnvelopeRecipient> Recipients { get; } = new();
    public bool EightBit { get; init; }
    public bool SmtpUtf8 { get; init; }
    public string? EnvelopeId { get; init; }
    public DsnReturn Return { get; init; }
    /// <summary>When MAIL was accepted: the log's before-queue delay runs from here to the commit.</summary>
    public long Started { get; } = System.Diagnostics.Stopwatch.GetTimestamp();

    // BDAT (RFC 3030): the body is built across chunks.
    public bool Chunking { get; set; }
    public IncomingMessage? Message { get; set; }
    public BodySink? Sink { get; set; }
    public BodyDecoder? Decoder { get; set; }
    /// <summary>The reply every further chunk gets once one failed; null while all is well.</summary>
    public string? ChunkFailure { get; set; }

    public async ValueTask DisposeAsync()
    {
        if (Message is not null) await Message.DisposeAsync().ConfigureAwait(false);
        Message = null;
    }
}

/// <summary>Writes the decoded body into the queue file; remembers a failure instead of throwing mid-stream.</summary>
internal sealed class BodySink
{
    private readonly Stream _body;

    public BodySink(Stream body) => _body = body;

    /// <summary>The first write error; after it nothing more is written.</summary>
    public Exception? Failure { get; private set; }

    public void Write(ReadOnlySpan<byte> data)
    {
        if (Failure is not null) return;
        try
        {
            _body.Write(data);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            Failure = ex;
        }
    }
}
