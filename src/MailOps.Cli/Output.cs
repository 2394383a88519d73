using System.Globalization;
using System.Text;
using System.Text.Json;
using MailOps.Core.Queue;

namespace MailOps.Cli;

/// <summary>How the CLI prints queue listings and traces: a table for people, JSON for programs.</summary>
internal static class Output
{
    internal static readonly JsonWriterOptions JsonOptions = new() { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// One JSON array of every message, written as the messages are read: a second thread writes
    /// chunks of them while the first reads the next (memory holds a few chunks, not the queue).
    /// </summary>
    public static void WriteQueueJson(Stream stdout, IEnumerable<QueuedMail> messages)
    {
        const int Chunk = 1024;
        using var chunks = new System.Collections.Concurrent.BlockingCollection<List<QueuedMail>>(boundedCapacity: 4);
        var writer = Task.Run(() =>
        {
            using var w = new Utf8JsonWriter(stdout, JsonOptions);
            w.WriteStartArray();
            foreach (var chunk in chunks.GetConsumingEnumerable())
            {
                foreach (var m in chunk) WriteQueuedMail(w, m);
                w.Flush();
            }
            w.WriteEndArray();
            w.Flush();
            stdout.Write("\n"u8);
            stdout.Flush();
        });
        try
        {
            var chunk = new List<QueuedMail>(Chunk);
            foreach (var m in messages)
            {
                chunk.Add(m);
                if (chunk.Count < Chunk) continue;
                chunks.Add(chunk);
                chunk = new List<QueuedMail>(Chunk);
            }
            if (chunk.Count > 0) chunks.Add(chunk);
        }
        finally
        {
            chunks.CompleteAdding();
        }
        writer.GetAwaiter().GetResult();
    }

    private static void WriteQueuedMail(Utf8JsonWriter w, QueuedMail m)
    {
        w.WriteStartObject();
        w.WriteString("id", m.Id);
        w.WriteString("state", m.State);
        w.WriteString("sender", m.Sender);
        w.WriteNumber("size", m.Size);
        w.WriteString("arrived", m.Arrived);
        w.WriteNumber("ageSeconds", Math.Round(m.Age.TotalSeconds, 3));
        w.WriteNumber("attempts", m.Attempts);
        WriteOptional(w, "nextAttempt", m.NextAttempt);
        WriteOptional(w, "lastError", m.LastError);
        WriteOptional(w, "messageId", m.MessageId);
        WriteOptional(w, "subject", m.Subject);
        w.WriteStartArray("recipients");
        foreach (var r in m.GetEnvelope().Recipients)
        {
            w.WriteStartObject();
            w.WriteString("address", r.Address);
            w.WriteString("state", r.State.ToString());
            w.WriteNumber("attempts", r.Attempts);
            WriteOptional(w, "nextAttempt", r.NextAttempt);
            WriteOptional(w, "lastError", r.LastError);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>One JSON array of events; each names the queue id it belongs to (a Message-ID can match several).</summary>
    public static void WriteTraceJson(Stream stdout, IEnumerable<MailTraceEvent> events)
    {
        using var w = new Utf8JsonWriter(stdout, JsonOptions);
        w.WriteStartArray();
        foreach (var e in events)
        {
            w.WriteStartObject();
            w.WriteString("id", e.Id);
            w.WriteString("time", e.Time);
            w.WriteString("event", e.Event.ToString());
            WriteOptional(w, "recipient", e.Recipient);
            WriteOptional(w, "host", e.Host);
            WriteOptional(w, "address", e.Address);
            WriteOptional(w, "tls", e.Tls);
            WriteOptional(w, "status", e.Status);
            WriteOptional(w, "detail", e.Detail);
            WriteOptional(w, "messageId", e.MessageId);
            if (e.Duration is { } d) w.WriteNumber("durationMs", d.TotalMilliseconds);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.Flush();
        stdout.WriteByte((byte)'\n');
    }

    public static void WriteTraceTable(TextWriter stdout, string id, IReadOnlyList<MailTraceEvent> events)
    {
        stdout.WriteLine($"Trace of {id}:");
        foreach (var e in events)
        {
            var parts = new List<string> { e.Time.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture), e.Event.ToString() };
            if (e.Recipient is not null) parts.Add("<" + e.Recipient + ">");
            if (e.Host is not null) parts.Add(e.Address is null ? e.Host : $"{e.Host}[{e.Address}]");
            else if (e.Address is not null) parts.Add($"[{e.Address}]");
            if (e.Status is not null) parts.Add(e.Status);
            if (e.Detail is not null) parts.Add(e.Detail);
            stdout.WriteLine("  " + string.Join("  ", parts));
        }
    }

    private static void WriteOptional(Utf8JsonWriter w, string name, string? value)
    {
        if (value is not null) w.WriteString(name, value);
    }

    private static void WriteOptional(Utf8JsonWriter w, string name, DateTimeOffset? value)
    {
        if (value is { } v) w.WriteString(name, v);
    }
}
