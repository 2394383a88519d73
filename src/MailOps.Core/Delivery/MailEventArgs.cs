namespace MailOps.Core.Delivery;

/// <summary>What happened to a message (the events of a running MailServer).</summary>
public enum MailEventKind { Received, Delivered, Deferred, Bounced }

/// <summary>
/// One event of a message, as a running server raises it (MessageReceived, MessageDelivered,
/// MessageDeferred, MessageBounced): for Register-ObjectEvent in PowerShell, or any .NET handler.
/// </summary>
public sealed class MailEventArgs : EventArgs
{
    public required MailEventKind Kind { get; init; }
    /// <summary>The queue id.</summary>
    public required string Id { get; init; }
    /// <summary>The envelope sender ("" for a bounce).</summary>
    public required string Sender { get; init; }
    /// <summary>The recipients this event is about (all of them for Received).</summary>
    public required IReadOnlyList<string> Recipients { get; init; }
    public string? Subject { get; init; }
    public string? MessageId { get; init; }
    /// <summary>The enhanced status of the outcome ("2.0.0", "4.4.1", "5.1.1"); null for Received.</summary>
    public string? Status { get; init; }
    /// <summary>The reply or the reason, for Delivered, Deferred and Bounced.</summary>
    public string? Detail { get; init; }
    public DateTimeOffset Time { get; init; }

    public override string ToString() => $"{Kind} {Id} <{Sender}> -> {string.Join(", ", Recipients)}{(Status is null ? "" : " " + Status)}";
}
