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
