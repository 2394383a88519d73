using System.Buffers;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MailOps.Core.Queue;

/// <summary>
/// One line of the mail log (docs/logging.md): a journal event with the message it belongs to.
/// Written as one JSON object per line to <c>&lt;queue&gt;/log/YYYY-MM-DD.jsonl</c> (UTC days), and
/// by a server to its log, as text or JSON. Fields are added over time, never renamed or removed.
/// </summary>
public sealed class MailLogEntry
{
    public DateTimeOffset Time { get; set; }
    /// <summary>Queue id of the message.</summary>
    public string Id { get; set; } = "";
    public JournalEventType Event { get; set; }
    /// <summary>Envelope sender ("" for a bounce's null sender); null when the message was no longer known.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Sender { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? MessageId { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Subject { get; set; }
    /// <summary>Received: how the message came (smtp, submit, sendmail, bounce).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Origin { get; set; }
    /// <summary>The recipient an event is about (attempts, outcomes, an operator's action on one recipient).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Recipient { get; set; }
    /// <summary>Every envelope recipient, on the received and queued events.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public List<string>? Recipients { get; set; }
    /// <summary>Received: the client's HELO name. Attempts: the relay host's name (or "maildir").</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Host { get; set; }
    /// <summary>Received: the client's IP address. Attempts: the relay's IP:port.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Address { get; set; }
    /// <summary>TLS protocol and cipher, with the certificate's verdict and the policy on attempts.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Tls { get; set; }
    /// <summary>Received: the AUTH user. An operator's action: who did it.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? User { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? Size { get; set; }
    /// <summary>Reply code and enhanced status ("250 2.0.0"), or the status alone.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Status { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Detail { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public JournalDelays? Delays { get; set; }
    /// <summary>Attempts: how long the transaction with the relay (or the Maildir delivery) took, in milliseconds.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? DurationMs { get; set; }

    internal static MailLogEntry From(string id, JournalEvent e, Envelope? message) => new()
    {
        Time = e.Time,
        Id = id,
        Event = e.Event,
        Sender = message?.Sender,
        MessageId = e.MessageId ?? message?.MessageId,
        Subject = e.Event == JournalEventType.Received ? message?.Subject : null,
        Origin = e.Event == JournalEventType.Received ? message?.Origin.ToString().ToLowerInvariant() : null,
        Recipient = e.Recipient,
        Recipients = e.Event is JournalEventType.Received or JournalEventType.Queued && message is not null ? message.Recipients.Select(r => r.Address).ToList() : null,
        Host = e.Host,
        Address = e.Address,
        Tls = e.Tls,
        User = e.User,
        Size = e.Size,
        Status = e.Status,
        Detail = e.Detail,
        Delays = e.Delays,
        DurationMs = e.DurationMs,
    };

    /// <summary>The event as the message's history holds it (what a trace shows); the message's context stays here.</summary>
    internal JournalEvent ToEvent() => new()
    {
        Time = Time, Event = Event, Recipient = Recipient, Host = Host, Address = Address, Tls = Tls, Status = Status, Detail = Detail,
        DurationMs = DurationMs, User = User, Size = Size, Delays = Delays,
        MessageId = Event == JournalEventType.Received ? MessageId : null,
    };

    /// <summary>The text form: "ID: event key=value, ..." in the manner of Postfix's log.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder(160);
        sb.Append(Id).Append(": ").Append(Event.ToString().ToLowerInvariant());
        void Pair(string key, string? value, bool bracket = false)
        {
            if (value is null) return;
            sb.Append(' ').Append(key).Append('=');
            if (bracket) sb.Append('<').Append(value).Append('>');
            else sb.Append(value.Contains(' ') ? '"' + value + '"' : value);
        }
        bool received = Event == JournalEventType.Received;
        if (received) Pair("from", Sender, bracket: true);
        if (received) Pair("via", Origin);
        if (Recipient is not null) Pair("to", Recipient, bracket: true);
        else if (Recipients is not null) Pair("to", string.Join(",", Recipients.Select(r => "<" + r + ">")));
        if (Host is not null || Address is not null) Pair(received ? "client" : "relay", Address is null ? Host : $"{Host ?? "unknown"}[{Address}]");
        Pair("tls", Tls);
        Pair(received ? "user" : "by", User);
        Pair("size", Size?.ToString(CultureInfo.InvariantCulture));
        if (received) Pair("message-id", MessageId);
        Pair("delays", Delays?.ToString());
        Pair("status", Status);
        // What received and queued lines say in their detail is in their fields already.
        if (Detail is not null && Event is not (JournalEventType.Received or JournalEventType.Queued)) sb.Append(" (").Append(Detail).Append(')');
        return sb.ToString();
    }

    /// <summary>The JSON form: one line, the schema of docs/logging.md.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, MailLogJsonContext.Log.MailLogEntry);
}

[JsonSerializable(typeof(MailLogEntry))]
internal sealed partial class MailLogJsonContext : JsonSerializerContext
{
    /// <summary>camelCase names, enum names as strings, and addresses and Message-IDs written as they are (no \u003C for '&lt;'), so a byte search finds them.</summary>
    public static MailLogJsonContext Log { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter() },
    });
}

/// <summary>What to look for in the mail log. Patterns take * and ? and ignore case; null matches anything.</summary>
public sealed class MailLogQuery
{
    public string? Sender { get; init; }
    /// <summary>Matches the event's recipient, or any recipient of a received or queued event.</summary>
    public string? Recipient { get; init; }
    /// <summary>With or without angle brackets.</summary>
    public string? MessageId { get; init; }
    public string? Id { get; init; }
    public IReadOnlyCollection<JournalEventType>? Events { get; init; }
    public DateTimeOffset? Start { get; init; }
    public DateTimeOffset? End { get; init; }
}

/// <summary>
/// The retained mail log of a queue: appended by every process that journals, one file per UTC
/// day, searched newest first. A search reads each day's file once in large blocks, finds the
/// lines that can match with a vectorised byte search on the query's longest literal, and parses
/// only those.
/// </summary>
public static class MailLog
{
    private const string Extension = ".jsonl";

    internal static string FileOf(string logDir, DateTimeOffset time) =>
        Path.Combine(logDir, time.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + Extension);

    /// <summary>
    /// Appends entries (one O_APPEND write per day they fall on), without fsync: a crash can lose
    /// the last lines of the story, never a message (the queue's files are the record of what is owed).
    /// </summary>
    internal static void Append(string logDir, IReadOnlyList<MailLogEntry> entries)
    {
        foreach (var day in entries.GroupBy(e => e.Time.UtcDateTime.Date))
        {
            var buffer = new ArrayBufferWriter<byte>(512 * entries.Count);
            foreach (var e in day)
            {
                buffer.Write(JsonSerializer.SerializeToUtf8Bytes(e, MailLogJsonContext.Log.MailLogEntry));
                buffer.Write("\n"u8);
            }
            DurableFile.AppendLines(FileOf(logDir, day.First().Time), buffer.WrittenSpan);
        }
    }

    /// <summary>Removes the days older than <paramref name="cutoff"/>; returns how many.</summary>
    internal static int Expire(string logDir, DateTimeOffset cutoff)
    {
        int removed = 0;
        foreach (var (path, day) in Days(logDir))
        {
            if (day.AddDays(1) >= cutoff.UtcDateTime) continue;
            try { File.Delete(path); removed++; }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
        return removed;
    }

    private static IEnumerable<(string Path, DateTime Day)> Days(string logDir)
    {
        IEnumerable<string> files;
        try { files = Directory.EnumerateFiles(logDir, "*" + Extension).ToList(); }
        catch (DirectoryNotFoundException) { yield break; }
        foreach (var path in files)
            if (DateTime.TryParseExact(Path.GetFileNameWithoutExtension(path), "yyyy-MM-dd", CultureInfo.InvariantCulture,
                    DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var day))
                yield return (path, day);
    }

    /// <summary>The mail log's end now: where a <see cref="MailLogTail"/> that reads what comes next starts.</summary>
    internal static MailLogTail TailFrom(string logDir, DateTimeOffset now)
    {
        long length = 0;
        try { length = new FileInfo(FileOf(logDir, now)).Length; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        return new MailLogTail(logDir, now.UtcDateTime.Date, length);
    }

    /// <summary>The entries of <paramref name="queuePath"/>'s log that match, newest first.</summary>
    public static IEnumerable<MailLogEntry> Search(string queuePath, MailLogQuery query)
    {
        string logDir = new QueueLayout(queuePath).LogDir;
        var matcher = new Matcher(query);
        foreach (var (path, day) in Days(logDir).OrderByDescending(d => d.Day))
        {
            if (query.Start is { } start && day.AddDays(1) <= start.UtcDateTime) continue;
            if (query.End is { } end && day > end.UtcDateTime) continue;
            var found = SearchFile(path, matcher);
            for (int i = found.Count - 1; i >= 0; i--) yield return found[i];
        }
    }

    /// <summary>
    /// The entries of the messages <paramref name="ids"/>, oldest first per message, in one pass over
    /// the retained days: what tracing many messages at once reads (one search per message would
    /// read the whole log each time). Only lines whose id is one of them are parsed.
    /// </summary>
    internal static Dictionary<string, List<MailLogEntry>> ReadIds(string logDir, IReadOnlySet<string> ids)
    {
        var found = new Dictionary<string, List<MailLogEntry>>(StringComparer.Ordinal);
        foreach (var (path, _) in Days(logDir).OrderBy(d => d.Day))
        {
            ReadBlocks(path, lines =>
            {
                while (!lines.IsEmpty)
                {
                    int nl = lines.IndexOf((byte)'\n');
                    var line = nl < 0 ? lines : lines[..nl];
                    lines = nl < 0 ? default : lines[(nl + 1)..];
                    // {"time":"...","id":"<16 characters>",...: the id is the second field of every line.
                    int at = line.IndexOf(",\"id\":\""u8);
                    if (at < 0 || line.Length < at + 7 + QueueId.Length) continue;
                    string id = Encoding.ASCII.GetString(line.Slice(at + 7, QueueId.Length));
                    if (!ids.Contains(id)) continue;
                    if (Parse(line) is { } e && e.Id == id)
                        (found.TryGetValue(id, out var list) ? list : found[id] = []).Add(e);
                }
            });
        }
        return found;
    }

    private delegate void LinesReader(ReadOnlySpan<byte> lines);

    /// <summary>One line of the log; null for an empty line or one cut short by a crash.</summary>
    internal static MailLogEntry? Parse(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty) return null;
        try { return JsonSerializer.Deserialize(line, MailLogJsonContext.Log.MailLogEntry); }
        catch (JsonException) { return null; }
    }

    private static List<MailLogEntry> SearchFile(string path, Matcher matcher)
    {
        var found = new List<MailLogEntry>();
        byte[] lowered = ArrayPool<byte>.Shared.Rent(BlockSize);
        try { ReadBlocks(path, lines => matcher.Scan(lines, lowered, found)); }
        finally { ArrayPool<byte>.Shared.Return(lowered); }
        return found;
    }

    private const int BlockSize = 4 << 20;

    /// <summary>A day's file in blocks of whole lines (a last line without its newline comes at the end).</summary>
    private static void ReadBlocks(string path, LinesReader onLines)
    {
        FileStream file;
        try { file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.SequentialScan); }
        catch (FileNotFoundException) { return; }
        using (file)
        {
            byte[] block = ArrayPool<byte>.Shared.Rent(BlockSize);
            try
            {
                int kept = 0;
                while (true)
                {
                    int read = file.Read(block, kept, block.Length - kept);
                    int length = kept + read;
                    if (length == 0) break;
                    // Whole lines only; the tail waits for the next block (a last line without its newline is read at the end).
                    int end = read == 0 ? length : block.AsSpan(0, length).LastIndexOf((byte)'\n') + 1;
                    if (end == 0)
                    {
                        if (length < block.Length) { kept = length; continue; }
                        end = length; // a line longer than a block: not ours; skip it
                    }
                    onLines(block.AsSpan(0, end));
                    kept = length - end;
                    block.AsSpan(end, kept).CopyTo(block);
                    if (read == 0) break;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(block);
            }
        }
    }

    /// <summary>A * and ? pattern as a whole-string, case-insensitive test (the queue's <see cref="Wildcard"/>); null for no pattern.</summary>
    private static Func<string?, bool>? Pattern(string? pattern) =>
        string.IsNullOrEmpty(pattern) ? null : s => s is not null && Wildcard.IsMatch(s, pattern);

    private sealed class Matcher
    {
        private readonly MailLogQuery _query;
        private readonly Func<string?, bool>? _sender, _recipient, _messageId, _id;
        /// <summary>Lower-case bytes every matching line contains; null: every line is a candidate.</summary>
        private readonly byte[]? _needle;

        public Matcher(MailLogQuery query)
        {
            _query = query;
            _sender = Pattern(query.Sender);
            _recipient = Pattern(query.Recipient);
            _messageId = Pattern(query.MessageId?.Trim().Trim('<', '>'));
            _id = Pattern(query.Id);
            _needle = Wildcard.Needle([query.Id, query.MessageId?.Trim().Trim('<', '>'), query.Recipient, query.Sender]);
            if (_needle is null && query.Events is { Count: 1 } one)
            {
                _needle = Encoding.UTF8.GetBytes($"\"event\":\"{one.First()}\"");
                ToLowerAscii(_needle, _needle);
            }
        }

        public void Scan(ReadOnlySpan<byte> lines, byte[] lowered, List<MailLogEntry> found)
        {
            if (_needle is null)
            {
                while (!lines.IsEmpty)
                {
                    int nl = lines.IndexOf((byte)'\n');
                    var line = nl < 0 ? lines : lines[..nl];
                    Consider(line, found);
                    lines = nl < 0 ? default : lines[(nl + 1)..];
                }
                return;
            }
            var low = lowered.AsSpan(0, lines.Length);
            ToLowerAscii(lines, low);
            int at = 0;
            while (true)
            {
                int hit = low[at..].IndexOf(_needle);
                if (hit < 0) return;
                hit += at;
                int start = lines[..hit].LastIndexOf((byte)'\n') + 1;
                int nl = lines[hit..].IndexOf((byte)'\n');
                int end = nl < 0 ? lines.Length : hit + nl;
                Consider(lines[start..end], found);
                if (end >= lines.Length) return;
                at = end + 1;
            }
        }

        private void Consider(ReadOnlySpan<byte> line, List<MailLogEntry> found)
        {
            if (Parse(line) is { } e && Matches(e)) found.Add(e);
        }

        private bool Matches(MailLogEntry e)
        {
            if (_query.Start is { } start && e.Time < start) return false;
            if (_query.End is { } end && e.Time > end) return false;
            if (_query.Events is { Count: > 0 } events && !events.Contains(e.Event)) return false;
            if (_id is not null && !_id(e.Id)) return false;
            if (_sender is not null && !_sender(e.Sender)) return false;
            if (_messageId is not null && !_messageId(e.MessageId?.Trim('<', '>'))) return false;
            if (_recipient is not null && !_recipient(e.Recipient) && !(e.Recipients?.Any(r => _recipient(r)) ?? false)) return false;
            return true;
        }
    }

    /// <summary>ASCII A-Z to a-z, other bytes as they are, a vector at a time.</summary>
    internal static void ToLowerAscii(ReadOnlySpan<byte> from, Span<byte> to)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var a = new Vector<byte>((byte)'A');
            var span = new Vector<byte>(26);
            var bit = new Vector<byte>(0x20);
            for (; i + Vector<byte>.Count <= from.Length; i += Vector<byte>.Count)
            {
                var v = new Vector<byte>(from[i..]);
                var upper = Vector.LessThan(v - a, span);
                (v | (upper & bit)).CopyTo(to[i..]);
            }
        }
        for (; i < from.Length; i++)
        {
            byte b = from[i];
            to[i] = (uint)(b - 'A') < 26 ? (byte)(b | 0x20) : b;
        }
    }
}

/// <summary>
/// The lines appended to a mail log from a point on, read as they come (a flush waiting for its
/// recipients' outcomes): each call reads only what was appended since the last, whole lines,
/// following the days as they turn.
/// </summary>
internal sealed class MailLogTail(string logDir, DateTime day, long offset)
{
    private DateTime _day = day;
    private long _offset = offset;

    /// <summary>The entries appended since the last call, in order.</summary>
    public List<MailLogEntry> ReadNew(DateTimeOffset now)
    {
        var found = new List<MailLogEntry>();
        while (true)
        {
            ReadDay(found);
            if (_day >= now.UtcDateTime.Date) return found;
            _day = _day.AddDays(1); // the day turned: what is left of the old one was read
            _offset = 0;
        }
    }

    private void ReadDay(List<MailLogEntry> found)
    {
        byte[] bytes;
        try
        {
            using var file = new FileStream(MailLog.FileOf(logDir, new DateTimeOffset(_day, TimeSpan.Zero)), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
            if (file.Length <= _offset) return;
            bytes = new byte[file.Length - _offset];
            file.Position = _offset;
            file.ReadExactly(bytes);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or EndOfStreamException) { return; }
        int end = bytes.AsSpan().LastIndexOf((byte)'\n') + 1; // a line still being written waits for the next call
        _offset += end;
        for (var rest = bytes.AsSpan(0, end); !rest.IsEmpty;)
        {
            int nl = rest.IndexOf((byte)'\n');
            var line = rest[..nl];
            rest = rest[(nl + 1)..];
            if (MailLog.Parse(line) is { } e) found.Add(e);
        }
    }
}
