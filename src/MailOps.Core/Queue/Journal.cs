using System.Text.Json.Serialization;

namespace MailOps.Core.Queue;

/// <summary>The kinds of event a message's journal records.</summary>
public enum JournalEventType
{
    Received,
    Queued,
    Attempt,
    Deferred,
    Delivered,
    Bounced,
    Held,
    Released,
    MadeDue,
    Removed,
    PossibleDuplicate,
    Expired,
}

/// <summary>One line of <c>journal/&lt;id&gt;</c>. What a trace shows.</summary>
public sealed class JournalEvent
{
    public DateTimeOffset Time { get; set; }
    public JournalEventType Event { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Recipient { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Host { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Address { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Tls { get; set; }
    /// <summary>Reply or status: "250 2.0.0", "451 4.3.0" ...</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Status { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Detail { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? DurationMs { get; set; }
    /// <summary>Set on <see cref="JournalEventType.Received"/>, so a trace can start from a Message-ID.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? MessageId { get; set; }
}

/// <summary>
/// Every journal line MailOps writes is built here, so a trace (and anything that reads journals)
/// sees one shape per event whichever component reports it.
/// </summary>
public static class JournalEvents
{
    public static JournalEvent Received(Envelope envelope) => new()
    {
        Time = envelope.Arrived, Event = JournalEventType.Received, MessageId = envelope.MessageId,
        Address = envelope.ClientAddress, Host = envelope.ClientHelo,
        Detail = $"from <{envelope.Sender}> via {envelope.Origin.ToString().ToLowerInvariant()}, {envelope.Size} octets",
    };

    public static JournalEvent Queued(Envelope envelope, DateTimeOffset now) => new()
    {
        Time = now, Event = JournalEventType.Queued,
        Detail = "for " + string.Join(", ", envelope.Recipients.Select(r => "<" + r.Address + ">")),
    };

    /// <summary>An operator's action (held, released, made due, removed) on one recipient or the whole message.</summary>
    public static JournalEvent Operator(JournalEventType action, DateTimeOffset now, string? recipient = null, string? detail = null, string? status = null) => new()
    {
        Time = now, Event = action, Recipient = recipient, Detail = detail, Status = status,
    };

    /// <summary>One delivery attempt of one recipient, as the remote host or the Maildir answered.</summary>
    public static JournalEvent Attempt(Delivery.RecipientResult result, DateTimeOffset now, string? note = null) => new()
    {
        Time = now, Event = JournalEventType.Attempt, Recipient = result.Recipient, Host = result.Host, Address = result.Address,
        Tls = result.Tls, Status = result.Status, Detail = note is null ? result.Detail : result.Detail + note, DurationMs = result.DurationMs,
    };

    /// <summary>What an attempt meant for the recipient: delivered, deferred (with the next try) or bounced.</summary>
    public static JournalEvent Outcome(JournalEventType outcome, Delivery.RecipientResult result, DateTimeOffset now, string detail) => new()
    {
        Time = now, Event = outcome, Recipient = result.Recipient, Host = result.Host, Status = result.Status, Detail = detail,
    };

    public static JournalEvent Expired(string recipient, DateTimeOffset now, string detail) => new()
    {
        Time = now, Event = JournalEventType.Expired, Recipient = recipient, Detail = detail,
    };

    /// <summary>A line about the message as a whole: a report queued, a report withheld, a connection that failed.</summary>
    public static JournalEvent Note(JournalEventType type, DateTimeOffset now, string detail, string? host = null, string? address = null, string? status = null) => new()
    {
        Time = now, Event = type, Detail = detail, Host = host, Address = address, Status = status,
    };
}
