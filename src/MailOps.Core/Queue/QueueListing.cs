using System.Text.Json;

namespace MailOps.Core.Queue;

/// <summary>
/// <c>mailops queue --json</c>'s output, written by the CLI and by its ahead-of-time listing
/// program <c>mailops-list</c> alike (docs/queue.md, "Listing a long queue").
/// </summary>
public static class QueueListing
{
    /// <summary>Relaxed escaping: addresses and subjects stay readable (no \u003C for '&lt;').</summary>
    public static readonly JsonWriterOptions JsonOptions = new() { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The queue's messages (those in <paramref name="state"/>) on standard output: a JSON array, or a table for people.</summary>
    public static void Print(QueueStore store, MessageState? state, bool json, TextWriter stdout)
    {
        var messages = store.Stream(new QueueFilter { State = state });
        if (!json)
        {
            QueueTable.Write(stdout, messages.ToList());
            return;
        }
        stdout.Flush();
        using var raw = new BufferedStream(Console.OpenStandardOutput(), 1 << 16);
        WriteJson(raw, messages);
    }

    /// <summary>
    /// One JSON array of every message, written as the messages are read: a second thread writes
    /// chunks of them while the first reads the next (memory holds a few chunks, not the queue).
    /// </summary>
    public static void WriteJson(Stream output, IEnumerable<QueuedMail> messages)
    {
        const int Chunk = 256;
        using var chunks = new System.Collections.Concurrent.BlockingCollection<List<QueuedMail>>(boundedCapacity: 4);
        using var failed = new CancellationTokenSource();
        var writer = Task.Run(() =>
        {
            try
            {
                using var w = new Utf8JsonWriter(output, JsonOptions);
                w.WriteStartArray();
                foreach (var chunk in chunks.GetConsumingEnumerable())
                {
                    foreach (var m in chunk) Write(w, m);
                    w.Flush();
                }
                w.WriteEndArray();
                w.Flush();
                output.Write("\n"u8);
                output.Flush();
            }
            catch
            {
                failed.Cancel(); // a reader gone (a closed pipe): the reading side stops instead of waiting for room
                throw;
            }
        });
        try
        {
            var chunk = new List<QueuedMail>(Chunk);
            foreach (var m in messages)
            {
                chunk.Add(m);
                if (chunk.Count < Chunk) continue;
                chunks.Add(chunk, failed.Token);
                chunk = new List<QueuedMail>(Chunk);
            }
            if (chunk.Count > 0) chunks.Add(chunk, failed.Token);
        }
        catch (OperationCanceledException) when (failed.IsCancellationRequested)
        {
            // The writer's own error is thrown below.
        }
        finally
        {
            chunks.CompleteAdding();
        }
        writer.GetAwaiter().GetResult();
    }

    private static void Write(Utf8JsonWriter w, QueuedMail m)
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
        foreach (var r in m.Envelope.Recipients)
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

    /// <summary>A property only when it has a value.</summary>
    public static void WriteOptional(Utf8JsonWriter w, string name, string? value)
    {
        if (value is not null) w.WriteString(name, value);
    }

    /// <summary>A time only when there is one.</summary>
    public static void WriteOptional(Utf8JsonWriter w, string name, DateTimeOffset? value)
    {
        if (value is { } v) w.WriteString(name, v);
    }
}
