using System.Buffers;
using System.Buffers.Text;
using System.Runtime.Versioning;
using System.Text;
using System.Text.Json;

namespace MailOps.Core.Queue;

/// <summary>
/// The summary index (docs/queue.md, "The summary index"): <c>index/envelopes</c> holds a copy of
/// every envelope, so a listing reads one file instead of one file per message. It is a cache,
/// never the record: the envelopes in env/ are. Every envelope write appends a line with the
/// envelope and the inode and modification time of the file it was written to (a new file each
/// time: envelopes are replaced by rename); a message that leaves the queue appends nothing (its id
/// is no longer in env/, so no reader looks its lines up; older indexes may hold tombstones). A
/// reader takes a line only when its inode is that of the file now in env/ (one readdir gives
/// every inode); any other message is read from env/. So a lost append (a crash between the
/// rename and the append) costs one file read, never a wrong answer. Compaction rewrites the
/// file as a snapshot sorted by queue id, which a listing merges in one pass with the lines
/// appended since; the sweep of a starting server compacts it after checking every line against
/// a full stat (inode, size, time) of its envelope.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed class QueueIndex
{
    private const string HeaderStart = "{\"snapshot\":";
    private const int HeaderLength = 34; // {"snapshot":<20 digits>}\n
    private readonly QueueLayout _layout;

    public QueueIndex(QueueLayout layout) => _layout = layout;

    private string FilePath => Path.Combine(_layout.IndexDir, "envelopes");

    /// <summary>Records envelopes just written to files with these inodes and times, in one append; never throws for I/O.</summary>
    public void Written(IReadOnlyList<(string Id, FileFacts File, byte[] Json)> envelopes)
    {
        if (envelopes.Count == 0) return;
        var lines = new ArrayBufferWriter<byte>(envelopes.Sum(e => e.Json.Length + 80));
        foreach (var (id, file, json) in envelopes)
            WriteLine(lines, id, file.Inode, file.ModifiedNanoseconds, json);
        Append(lines.WrittenSpan);
    }

    private static void WriteLine(IBufferWriter<byte> output, string id, ulong inode, long modified, ReadOnlySpan<byte> envelopeJson)
    {
        var prefix = Encoding.UTF8.GetBytes($"{{\"id\":\"{id}\",\"ino\":{inode},\"mt\":{modified},\"env\":");
        output.Write(prefix);
        output.Write(envelopeJson);
        output.Write("}\n"u8);
    }

    private void Append(ReadOnlySpan<byte> line)
    {
        try { DurableFile.Append(FilePath, line); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A listing reads this message from env/ instead.
        }
    }

    /// <summary>One line of the index, as found: where its envelope JSON is, or a tombstone.</summary>
    internal readonly record struct Entry(int IdLength, ulong Inode, long Modified, bool Gone, ReadOnlyMemory<byte> Line, int EnvStart, int EnvLength)
    {
        private ReadOnlySpan<byte> IdBytes => Line.Span.Slice(7, IdLength);

        /// <summary>The queue id the line names (a new string: merging compares bytes instead, <see cref="CompareId"/>).</summary>
        public string Id => Encoding.ASCII.GetString(IdBytes);

        /// <summary>Ordinal comparison of the line's id with <paramref name="id"/>, without making a string of it.</summary>
        public int CompareId(string id)
        {
            var bytes = IdBytes;
            int common = Math.Min(bytes.Length, id.Length);
            for (int i = 0; i < common; i++)
                if (bytes[i] != id[i]) return bytes[i] - id[i];
            return bytes.Length - id.Length;
        }
    }

    /// <summary>Reads "{"id":"X","ino":N,"mt":N,"env":{...}}" or "{"id":"X","gone":1}" without a JSON parser; null for anything else.</summary>
    private static Entry? Parse(ReadOnlyMemory<byte> memory)
    {
        var line = memory.Span;
        if (!line.StartsWith("{\"id\":\""u8)) return null;
        int idEnd = line[7..].IndexOf((byte)'"');
        if (idEnd <= 0) return null;
        if (!Ascii.IsValid(line.Slice(7, idEnd))) return null;
        var rest = line[(7 + idEnd + 1)..];
        if (rest.StartsWith(",\"gone\":1}"u8)) return new Entry(idEnd, 0, 0, true, memory, 0, 0);
        if (!rest.StartsWith(",\"ino\":"u8)) return null;
        rest = rest[7..];
        if (!Utf8Parser.TryParse(rest, out ulong inode, out int used)) return null;
        rest = rest[used..];
        if (!rest.StartsWith(",\"mt\":"u8)) return null;
        rest = rest[6..];
        if (!Utf8Parser.TryParse(rest, out long modified, out used)) return null;
        rest = rest[used..];
        if (!rest.StartsWith(",\"env\":"u8) || line[^1] != (byte)'}') return null;
        int envStart = line.Length - rest.Length + 7;
        return new Entry(idEnd, inode, modified, false, memory, envStart, line.Length - 1 - envStart);
    }

    /// <summary>
    /// The envelopes of <paramref name="present"/> (env/'s entries with their inodes, sorted by
    /// id), in that order, each from the index when its line is current, else from
    /// <paramref name="readEnvelope"/> (null: gone meanwhile, left out). Streams: memory holds where the
    /// lines appended since the last compaction are, not the lines nor the snapshot.
    /// </summary>
    /// <param name="needle">Lower-case ASCII bytes a wanted envelope's JSON must contain (a filter's literal): lines without them are not parsed.</param>
    public IEnumerable<Envelope> Read(IReadOnlyList<(string Id, ulong Inode)> present, Func<string, Envelope?> readEnvelope, byte[]? needle = null)
    {
        // Batches are parsed on every core and given out in order.
        const int Batch = 512;
        var batch = new List<(string Id, byte[]? Json)>(Batch);
        var lowered = new byte[4096];
        foreach (var (id, inode, entry) in Merge(present))
        {
            byte[]? json = null;
            if (entry is { Gone: false } e && e.Inode == inode)
            {
                var env = e.Line.Span.Slice(e.EnvStart, e.EnvLength);
                // An escaped non-ASCII character could lower-case to a letter of the needle (the Kelvin
                // sign to k): such lines are parsed. Escaped ASCII (\u003C for '<') never is one.
                if (needle is not null && !HasNonAsciiEscape(env))
                {
                    if (lowered.Length < env.Length) lowered = new byte[env.Length * 2];
                    MailLog.ToLowerAscii(env, lowered);
                    if (lowered.AsSpan(0, env.Length).IndexOf(needle) < 0) continue; // cannot match: not parsed at all
                }
                json = env.ToArray();
            }
            batch.Add((id, json));
            if (batch.Count < Batch) continue;
            foreach (var envelope in Materialize(batch, readEnvelope)) if (envelope is not null) yield return envelope;
            batch.Clear();
        }
        foreach (var envelope in Materialize(batch, readEnvelope)) if (envelope is not null) yield return envelope;
    }

    /// <summary>Whether the JSON has a \uXXXX escape of a character beyond ASCII.</summary>
    private static bool HasNonAsciiEscape(ReadOnlySpan<byte> json)
    {
        int at;
        while ((at = json.IndexOf("\\u"u8)) >= 0)
        {
            if (at + 6 > json.Length) return true;
            var hex = json.Slice(at + 2, 4);
            if (hex[0] != (byte)'0' || hex[1] != (byte)'0' || hex[2] > (byte)'7') return true;
            json = json[(at + 6)..];
        }
        return false;
    }

    private static Envelope?[] Materialize(List<(string Id, byte[]? Json)> batch, Func<string, Envelope?> readEnvelope)
    {
        var result = new Envelope?[batch.Count];
        Parallel.For(0, batch.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var (id, json) = batch[i];
            Envelope? envelope = null;
            if (json is not null)
            {
                try { envelope = QueueJson.Deserialize(json); }
                catch (Exception ex) when (ex is JsonException or InvalidDataException) { }
            }
            result[i] = envelope ?? readEnvelope(id);
        });
        return result;
    }

    /// <summary>Each present id with its inode and the index's latest line for it (null: none).</summary>
    internal IEnumerable<(string Id, ulong Inode, Entry? Entry)> Merge(IReadOnlyList<(string Id, ulong Inode)> present)
    {
        FileStream? file = null;
        try { file = new FileStream(FilePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.SequentialScan); }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException) { }
        using (file)
        {
            long length = file?.Length ?? 0;
            long snapshotStart = 0, snapshotEnd = 0;
            if (file is not null && length >= HeaderLength)
            {
                var header = new byte[HeaderLength];
                file.ReadExactly(header);
                if (header.AsSpan().StartsWith(Encoding.ASCII.GetBytes(HeaderStart)) && header[^1] == (byte)'\n'
                    && Utf8Parser.TryParse(header.AsSpan(HeaderStart.Length, 20), out long snapshotBytes, out _))
                {
                    snapshotStart = HeaderLength;
                    snapshotEnd = Math.Min(length, HeaderLength + snapshotBytes);
                }
            }
            // The lines appended since the snapshot: the latest per id wins. Only where each is
            // kept in memory (a long tail, right after a bulk load, would otherwise be held whole);
            // the line is read again when its id comes up.
            var tail = new Dictionary<string, (long Offset, int Length)>(StringComparer.Ordinal);
            if (file is not null && length > snapshotEnd)
            {
                file.Position = snapshotEnd;
                foreach (var (offset, line) in Lines(file, snapshotEnd, length - snapshotEnd))
                    if (Parse(line) is { } e) tail[e.Id] = (offset, line.Length);
            }
            byte[] again = new byte[4096];
            Entry? ReadAgain((long Offset, int Length) at)
            {
                if (again.Length < at.Length) again = new byte[at.Length * 2];
                int got = 0;
                while (got < at.Length)
                {
                    int n = RandomAccess.Read(file!.SafeFileHandle, again.AsSpan(got, at.Length - got), at.Offset + got);
                    if (n == 0) return null;
                    got += n;
                }
                return Parse(again.AsMemory(0, at.Length));
            }
            IEnumerator<(long, ReadOnlyMemory<byte>)>? snapshot = null;
            if (file is not null && snapshotEnd > snapshotStart)
            {
                file.Position = snapshotStart;
                snapshot = Lines(file, snapshotStart, snapshotEnd - snapshotStart).GetEnumerator();
            }
            Entry? next = null;
            bool more = snapshot is not null;
            using (snapshot)
            {
                foreach (var (id, inode) in present)
                {
                    if (tail.TryGetValue(id, out var appended))
                    {
                        yield return (id, inode, ReadAgain(appended));
                        continue;
                    }
                    // The snapshot is sorted by id: skip what is no longer queued.
                    while (more && (next is null || next.Value.CompareId(id) < 0))
                    {
                        if (!(more = snapshot!.MoveNext())) { next = null; break; }
                        next = Parse(snapshot.Current.Item2);
                    }
                    yield return (id, inode, next is { } found && found.CompareId(id) == 0 ? found : null);
                }
            }
        }
    }

    /// <summary>
    /// The lines of the next <paramref name="count"/> bytes of <paramref name="file"/> (positioned at
    /// <paramref name="position"/>), each with its offset in the file; each is valid until the next is asked for.
    /// </summary>
    private static IEnumerable<(long Offset, ReadOnlyMemory<byte> Line)> Lines(FileStream file, long position, long count)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            int start = 0, end = 0;
            long bufferAt = position; // the file offset of buffer[0]
            while (true)
            {
                int nl = buffer.AsSpan(start, end - start).IndexOf((byte)'\n');
                if (nl >= 0)
                {
                    if (nl > 0) yield return (bufferAt + start, buffer.AsMemory(start, nl));
                    start += nl + 1;
                    continue;
                }
                if (count == 0)
                {
                    if (end > start) yield return (bufferAt + start, buffer.AsMemory(start, end - start)); // a last line without its newline
                    yield break;
                }
                // Keep the partial line; make room (a line longer than the buffer grows it).
                if (start > 0)
                {
                    buffer.AsSpan(start, end - start).CopyTo(buffer);
                    end -= start;
                    bufferAt += start;
                    start = 0;
                }
                if (end == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, end).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                int read = file.Read(buffer, end, (int)Math.Min(buffer.Length - end, count));
                if (read == 0) count = 0;
                else
                {
                    end += read;
                    count -= read;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Rewrites the index as a snapshot of <paramref name="present"/>, sorted by id: current lines
    /// are copied, and the envelope of any other message is read from env/ (with its file's
    /// inode and time). With <paramref name="verify"/> every line is also checked against a full
    /// stat of its envelope (inode, size and time: what a sweep does after a crash or power
    /// loss). Another compaction running at the same time makes this one do nothing.
    /// </summary>
    /// <returns>Lines kept, and envelopes read from env/; null when another compaction runs.</returns>
    public (int Kept, int Read)? Compact(IReadOnlyList<(string Id, ulong Inode)> present, bool verify)
    {
        using var guard = TryLock();
        if (guard is null) return null;
        int kept = 0, read = 0;
        string tmp = FilePath + ".tmp";
        using (var output = DurableFile.OpenPrivate(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            output.Write(new byte[HeaderLength]);
            var line = new ArrayBufferWriter<byte>(4096);
            foreach (var (id, inode, entry) in Merge(present))
            {
                line.ResetWrittenCount();
                string envPath = _layout.Env(id);
                if (entry is { Gone: false } e && e.Inode == inode
                    && (!verify || (Posix.LStat(envPath) is { } facts && facts.Inode == e.Inode && facts.ModifiedNanoseconds == e.Modified && facts.Size == e.EnvLength)))
                {
                    line.Write(e.Line.Span);
                    line.Write("\n"u8);
                    kept++;
                }
                else if (ReadCurrent(envPath) is { } current)
                {
                    WriteLine(line, id, current.File.Inode, current.File.ModifiedNanoseconds, current.Json);
                    read++;
                }
                output.Write(line.WrittenSpan);
            }
            long snapshotBytes = output.Length - HeaderLength;
            output.Position = 0;
            output.Write(Encoding.ASCII.GetBytes($"{HeaderStart}{snapshotBytes:D20}}}\n"));
        }
        File.Move(tmp, FilePath, overwrite: true);
        return (kept, read);
    }

    /// <summary>Whether the lines appended since the snapshot have grown past half of it (and 1 MiB): then compaction pays.</summary>
    public bool NeedsCompaction()
    {
        try
        {
            var info = new FileInfo(FilePath);
            if (!info.Exists) return Directory.EnumerateFileSystemEntries(_layout.EnvDir).Any();
            long length = info.Length, snapshot = 0;
            using (var file = new FileStream(FilePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1))
            {
                var header = new byte[HeaderLength];
                if (length >= HeaderLength && file.Read(header) == HeaderLength && Utf8Parser.TryParse(header.AsSpan(HeaderStart.Length, 20), out long bytes, out _))
                    snapshot = bytes;
            }
            long appended = length - HeaderLength - snapshot;
            return appended > Math.Max(1 << 20, snapshot / 2);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>An envelope file's bytes with the facts of the file they were read from (one open: fstat, then read).</summary>
    private static (byte[] Json, FileFacts File)? ReadCurrent(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (Posix.FStat(handle) is not { } facts) return null;
            var bytes = new byte[facts.Size];
            int total = 0;
            while (total < bytes.Length)
            {
                int n = RandomAccess.Read(handle, bytes.AsSpan(total), total);
                if (n == 0) return null;
                total += n;
            }
            return (bytes, facts);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private IDisposable? TryLock()
    {
        try
        {
            return new FileStream(Path.Combine(_layout.LockDir, "index"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1);
        }
        catch (IOException)
        {
            return null; // another compaction holds it
        }
    }
}
