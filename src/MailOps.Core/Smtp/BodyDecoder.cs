using System.Buffers;

namespace MailOps.Core.Smtp;

/// <summary>Receives decoded body octets.</summary>
internal delegate void SpanAction(ReadOnlySpan<byte> data);

/// <summary>What <see cref="BodyDecoder.Decode"/> found.</summary>
internal enum DecodeStatus
{
    /// <summary>Everything given was consumed; the body goes on.</summary>
    NeedMore,
    /// <summary>DATA only: the end-of-data line <c>.CRLF</c> was consumed.</summary>
    End,
    /// <summary>A CR not followed by LF, or an LF not preceded by CR (docs/smtp.md).</summary>
    BareNewline,
}

/// <summary>
/// Turns the octets of a DATA phase (dot-stuffed, RFC 5321 4.5.2) or of BDAT chunks (RFC 3030,
/// not stuffed) into the stored body, on the fly and without buffering lines: runs of octets are
/// passed to the sink as they arrive, minus the stuffing dots and the end-of-data line.
/// </summary>
/// <remarks>
/// Only <c>CRLF "." CRLF</c> ends DATA. Every line must end in CRLF: a bare CR or LF stops the
/// decoder at once (the caller refuses it), which is what makes <c>LF.LF</c>, <c>CR.CR</c>,
/// <c>CRLF.LF</c> and <c>CRCRLF.CRLF</c> unable to end a message early (SMTP smuggling,
/// CVE-2023-51764). A line longer than 1000 octets with its CRLF (4.5.3.1.6) and a body over the
/// size limit are remembered, not written; the decoder reads on to the end so the session stays
/// in step with the client.
/// </remarks>
internal sealed class BodyDecoder
{
    public const int MaxLineLength = 1000;

    private enum State { LineStart, InLine, AfterCr, AfterDot, AfterDotCr }

    private readonly bool _dotStuffed;
    private readonly long _maxLength;
    private readonly SpanAction _sink;
    private State _state = State.LineStart;
    private long _lineLength;

    /// <param name="dotStuffed">True for DATA, false for BDAT chunks.</param>
    /// <param name="maxLength">Octets the stored body may have; more sets <see cref="TooBig"/>.</param>
    /// <param name="sink">Receives the decoded body, in order.</param>
    public BodyDecoder(bool dotStuffed, long maxLength, SpanAction sink)
    {
        _dotStuffed = dotStuffed;
        _maxLength = maxLength;
        _sink = sink;
    }

    /// <summary>Decoded octets, counted even when no longer written.</summary>
    public long Length { get; private set; }
    /// <summary>Undecoded octets seen (for the transfer-rate check).</summary>
    public long Received { get; private set; }
    public bool TooBig { get; private set; }
    public bool LineTooLong { get; private set; }
    /// <summary>Nothing more reaches the sink (a limit was hit, or the caller gave up on the body).</summary>
    public bool Discarding => TooBig || LineTooLong || _stopped;
    /// <summary>True when the body so far ends with a complete line (what a chunked body must do at LAST).</summary>
    public bool AtLineStart => _state == State.LineStart;

    private bool _stopped;

    /// <summary>Stops writing to the sink but goes on decoding (after a sink failure).</summary>
    public void StopWriting() => _stopped = true;

    /// <summary>Decodes <paramref name="buffer"/>; <paramref name="consumed"/> is how many octets were used.</summary>
    public DecodeStatus Decode(ReadOnlySequence<byte> buffer, out long consumed)
    {
        consumed = 0;
        foreach (var memory in buffer)
        {
            var status = Decode(memory.Span, out int used);
            consumed += used;
            if (status != DecodeStatus.NeedMore) return status;
        }
        return DecodeStatus.NeedMore;
    }

    private DecodeStatus Decode(ReadOnlySpan<byte> span, out int used)
    {
        int runStart = 0, i = 0;
        DecodeStatus status = DecodeStatus.NeedMore;
        while (i < span.Length && status == DecodeStatus.NeedMore)
        {
            switch (_state)
            {
                case State.LineStart:
                    _lineLength = 0;
                    if (_dotStuffed && span[i] == (byte)'.')
                    {
                        Emit(span[runStart..i]);
                        runStart = ++i;
                        // The transparency dot is not part of the line (RFC 5321 4.5.2): the
                        // 1000-octet limit of 4.5.3.1.6 counts the line as it will be stored.
                        _state = State.AfterDot;
                    }
                    else
                    {
                        _state = State.InLine;
                    }
                    break;

                case State.InLine:
                    int k = span[i..].IndexOfAny((byte)'\r', (byte)'\n');
                    if (k < 0)
                    {
                        CountLine(span.Length - i);
                        i = span.Length;
                        break;
                    }
                    CountLine(k + 1);
                    i += k;
                    if (span[i] == (byte)'\n')
                    {
                        status = DecodeStatus.BareNewline;
                        break;
                    }
                    i++;
                    _state = State.AfterCr;
                    break;

                case State.AfterCr:
                    if (span[i] != (byte)'\n')
                    {
                        status = DecodeStatus.BareNewline;
                        break;
                    }
                    i++;
                    CountLine(1);
                    _state = State.LineStart;
                    break;

                case State.AfterDot:
                    if (span[i] == (byte)'\r')
                    {
                        // Either the end-of-data line or a bare CR: neither is part of the body.
                        runStart = ++i;
                        _state = State.AfterDotCr;
                    }
                    else
                    {
                        // A stuffed line: its first dot was dropped; the rest is ordinary text.
                        _state = State.InLine;
                    }
                    break;

                case State.AfterDotCr:
                    if (span[i] != (byte)'\n')
                    {
                        status = DecodeStatus.BareNewline;
                        break;
                    }
                    i++;
                    runStart = i;
                    _state = State.LineStart;
                    status = DecodeStatus.End;
                    break;
            }
        }
        if (status != DecodeStatus.BareNewline) Emit(span[runStart..i]);
        used = i;
        Received += i;
        return status;
    }

    private void CountLine(int octets)
    {
        _lineLength += octets;
        if (_lineLength > MaxLineLength) LineTooLong = true;
    }

    private void Emit(ReadOnlySpan<byte> run)
    {
        if (run.IsEmpty) return;
        Length = checked(Length + run.Length);
        if (Length > _maxLength) TooBig = true;
        if (!Discarding) _sink(run);
    }
}
