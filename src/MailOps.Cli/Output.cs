using System.Globalization;
using System.Text;
using System.Text.Json;
using MailOps.Core.Queue;

namespace MailOps.Cli;

/// <summary>How the CLI prints queue listings and traces: a table for people, JSON for programs.</summary>
internal static class Output
{
    internal static JsonWriterOptions JsonOptions => QueueListing.JsonOptions;

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
            QueueListing.WriteOptional(w, "recipient", e.Recipient);
            QueueListing.WriteOptional(w, "host", e.Host);
            QueueListing.WriteOptional(w, "address", e.Address);
            QueueListing.WriteOptional(w, "tls", e.Tls);
            QueueListing.WriteOptional(w, "status", e.Status);
            QueueListing.WriteOptional(w, "detail", e.Detail);
            QueueListing.WriteOptional(w, "messageId", e.MessageId);
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
}
