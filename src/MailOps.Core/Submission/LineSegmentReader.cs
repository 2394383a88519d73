namespace MailOps.Core.Submission;

/// <summary>
/// Reads a stream as line segments without ever holding more than one buffer: a segment is a
/// whole line up to and including its LF, or a piece of at most <c>max</c> octets of a longer
/// line. Segments point into the reader's buffer and are valid until the next read.
/// </summary>
internal sealed class LineSegmentReader(Stream source, int bufferSize = 64 * 1024)
{
    private readonly byte[] _buffer = new byte[bufferSize];
    private int _start, _end;
    private bool _eof;

    public readonly record struct Segment(ReadOnlyMemory<byte> Bytes, bool StartsLine, bool EndsLine)
    {
        public bool IsEmpty => Bytes.IsEmpty;
    }

    private bool _nextStartsLine = true;

    /// <summary>Octets consumed so far.</summary>
    public long Position { get; private set; }

    public async ValueTask<Segment> ReadAsync(int max, CancellationToken cancellationToken)
    {
        max = Math.Min(max, _buffer.Length);
        while (true)
        {
            int available = _end - _start;
            int lf = _buffer.AsSpan(_start, Math.Min(available, max)).IndexOf((byte)'\n');
            if (lf >= 0) return Take(lf + 1, endsLine: true);
            if (available >= max) return Take(max, endsLine: false);
            if (_eof) return available > 0 ? Take(available, endsLine: false) : default;

            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, available);
                _start = 0;
                _end = available;
            }
            int read = await source.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0) _eof = true;
            else _end += read;
        }
    }

    private Segment Take(int length, bool endsLine)
    {
        var segment = new Segment(_buffer.AsMemory(_start, length), _nextStartsLine, endsLine);
        _start += length;
        Position += length;
        _nextStartsLine = endsLine;
        return segment;
    }
}
