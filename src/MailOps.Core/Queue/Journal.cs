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

/// <summary>One event of a message's history, as the mail log records it (docs/logging.md). What a trace shows.</summary>
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
    /// <summary>Received: the AUTH user who sent it. An operator's action: who did it.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? User { get; set; }
    /// <summary>Received: the message size in octets.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? Size { get; set; }
    /// <summary>Received and delivery attempts: where the time went (Postfix's delays=a/b/c/d).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public JournalDelays? Delays { get; set; }
}

/// <summary>
/// Where a message's time went, in seconds (Postfix's <c>delays=a/b/c/d</c>): receiving it (MAIL
/// FROM to the commit), waiting in the queue (arrival to the start of this attempt), setting up
/// the connection (DNS, connect, greeting, EHLO, TLS, AUTH; 0 on a reused connection) and
/// transmitting (MAIL FROM to the final reply). Null where it does not apply or is unknown.
/// </summary>
public sealed class JournalDelays
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? BeforeQueue { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? InQueue { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? Connect { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? Transmit { get; set; }

    /// <summary>"a/b/c/d", a dash for what is unknown.</summary>
    public override string ToString()
    {
        static string F(double? v) => v is { } x ? x.ToString(x < 10 ? "0.###" : "0.#", System.Globalization.CultureInfo.InvariantCulture) : "-";
        return $"{F(BeforeQueue)}/{F(InQueue)}/{F(Connect)}/{F(Transmit)}";
    }
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
        Address = envelope.ClientAddress, Host = envelope.ClientHelo, Tls = envelope.ReceivedTls, User = envelope.AuthenticatedUser, Size = envelope.Size,
        Delays = envelope.ReceiveSeconds is { } receiving ? new JournalDelays { BeforeQueue = receiving } : null,
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
        Time = now, Event = action, Recipient = recipient, Detail = detail, Status = status, User = Actor,
    };

    /// <summary>Who an operator's action is by: the account and the program ("alice via pwsh").</summary>
    public static string Actor { get; } = $"{Environment.UserName} via {ProgramName()}";

    private static string ProgramName()
    {
        try { return Path.GetFileNameWithoutExtension(Environment.ProcessPath) ?? "unknown"; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return "unknown"; }
    }

    /// <summary>One delivery attempt of one recipient, as the remote host or the Maildir answered; with its delays when the envelope is known.</summary>
    public static JournalEvent Attempt(Delivery.RecipientResult result, DateTimeOffset now, Envelope? envelope = null, string? note = null) => new()
    {
        Time = now, Event = JournalEventType.Attempt, Recipient = result.Recipient, Host = result.Host, Address = result.Address,
        Tls = result.Tls, Status = result.Status, Detail = note is null ? result.Detail : result.Detail + note, DurationMs = result.DurationMs,
        Delays = envelope is null ? null : DelaysOf(result, envelope, now),
    };

    private static JournalDelays DelaysOf(Delivery.RecipientResult result, Envelope envelope, DateTimeOffset now)
    {
        double connect = (result.ConnectMs ?? 0) / 1000, transmit = (result.DurationMs ?? 0) / 1000;
        double inQueue = Math.Max(0, (now - envelope.Arrived).TotalSeconds - connect - transmit);
        return new JournalDelays
        {
            BeforeQueue = envelope.ReceiveSeconds,
            InQueue = Math.Round(inQueue, 3),
            Connect = result.ConnectMs is null ? null : Math.Round(connect, 3),
            Transmit = result.DurationMs is null ? null : Math.Round(transmit, 3),
        };
    }

    /// <summary>What an attempt meant for the recipient: delivered, deferred (with the next try) or bounced.</summary>
    public static JournalEvent Outcome(JournalEventType outcome, Delivery.RecipientResult result, DateTimeOffset now, string detail) => new()
    {
        Time = now, Event = outcome, Recipient = result.Recipient, Host = result.Host, Address = result.Address, Status = result.Status, Detail = detail,
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
