namespace MailOps.Core.Queue;

/// <summary>
/// A classified failure of the queue: <see cref="IsTransient"/> says whether trying again later
/// can succeed (the SMTP listener answers 451 4.3.0, the CLI exits 75) or not (554 / 65).
/// Nothing was committed when this is thrown from an enqueue.
/// </summary>
public sealed class QueueFailureException : MailOpsException
{
    public QueueFailureException(string message, bool isTransient, Exception? inner = null)
        : base(message, inner) => IsTransient = isTransient;

    public override bool IsTransient { get; }

    /// <summary>The SMTP reply an SMTP server gives for this failure (RFC 3463 codes).</summary>
    public string SmtpReply => !IsTransient ? "554 5.3.0 Message refused by the queue"
        : IsDiskFull ? Smtp.SmtpReplies.InsufficientStorage
        : Smtp.SmtpReplies.QueueTemporaryFailure;

    internal static QueueFailureException Transient(string message, Exception? inner = null) => new(message, true, inner);
}

/// <summary>No message with that id is in the queue.</summary>
public sealed class QueuedMessageNotFoundException : MailOpsException
{
    public QueuedMessageNotFoundException(string id) : base($"No message {id} in the queue.") => Id = id;
    public override bool IsTransient => false;
    public string Id { get; }
}
