namespace MailOps.Core.Queue;

/// <summary>One step of a message's journey: a journal line with the message it belongs to.</summary>
public sealed class MailTraceEvent
{
    internal MailTraceEvent(string id, JournalEvent e, string queuePath)
    {
        Id = id;
        QueuePath = queuePath;
        Time = e.Time;
        Event = e.Event;
        Recipient = e.Recipient;
        Host = e.Host;
        Address = e.Address;
        Tls = e.Tls;
        Status = e.Status;
        Detail = e.Detail;
        Duration = e.DurationMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null;
        MessageId = e.MessageId;
    }

    /// <summary>Queue id of the message.</summary>
    public string Id { get; }
    public string QueuePath { get; }
    public DateTimeOffset Time { get; }
    public JournalEventType Event { get; }
    public string? Recipient { get; }
    public string? Host { get; }
    public string? Address { get; }
    /// <summary>TLS protocol and cipher of a delivery, or null in clear.</summary>
    public string? Tls { get; }
    /// <summary>Reply or status: "250 2.0.0", "451 4.3.0" ...</summary>
    public string? Status { get; }
    public string? Detail { get; }
    public TimeSpan? Duration { get; }
    /// <summary>The Message-ID, on the Received event.</summary>
    public string? MessageId { get; }

    public override string ToString() => $"{Time:u} {Id} {Event} {Recipient} {Status} {Detail}".TrimEnd();
}

/// <summary>Reads the journey of messages from the mail log (it outlives the messages; see JournalRetention).</summary>
public static class MessageTrace
{
    /// <summary>
    /// The events of the message with queue id <paramref name="key"/>, or of every message whose
    /// Message-ID is <paramref name="key"/> (with or without angle brackets), oldest first per message.
    /// Empty when nothing is known of it.
    /// </summary>
    public static IReadOnlyList<MailTraceEvent> Read(QueueStore store, string key)
    {
        var ids = QueueId.IsValid(key) ? [key] : store.FindByMessageId(key);
        return ids.SelectMany(id => store.ReadJournal(id).Select(e => new MailTraceEvent(id, e, store.QueuePath))).ToList();
    }

    /// <summary><see cref="Read(QueueStore, string)"/> of many keys, reading the mail log once for all the queue ids among them.</summary>
    /// <returns>Each key with its events, in the order given.</returns>
    public static IReadOnlyList<(string Key, IReadOnlyList<MailTraceEvent> Events)> Read(QueueStore store, IReadOnlyList<string> keys)
    {
        if (keys.Count == 1) return [(keys[0], Read(store, keys[0]))];
        var idsOf = keys.Distinct(StringComparer.Ordinal).ToDictionary(k => k, k => QueueId.IsValid(k) ? [k] : store.FindByMessageId(k), StringComparer.Ordinal);
        var histories = store.ReadJournals(idsOf.Values.SelectMany(ids => ids));
        return keys.Select(k => (k, (IReadOnlyList<MailTraceEvent>)idsOf[k]
            .SelectMany(id => histories[id].Select(e => new MailTraceEvent(id, e, store.QueuePath))).ToList())).ToList();
    }
}
