using System.Text.Json.Serialization;

namespace MailOps.Core.Queue;

/// <summary>Delivery state of one recipient of a queued message.</summary>
public enum RecipientState
{
    /// <summary>Waiting for an attempt (due now, or at <see cref="EnvelopeRecipient.NextAttempt"/>).</summary>
    Pending,
    /// <summary>Tried, failed temporarily; next attempt at <see cref="EnvelopeRecipient.NextAttempt"/>.</summary>
    Deferred,
    Delivered,
    Bounced,
    /// <summary>Put on hold by an operator: never scheduled, never expires.</summary>
    Held,
}

/// <summary>RFC 3461 NOTIFY values.</summary>
[Flags]
public enum DsnNotify
{
    Default = 0,
    Never = 1,
    Success = 2,
    Failure = 4,
    Delay = 8,
}

/// <summary>RFC 3461 RET value.</summary>
public enum DsnReturn
{
    Default,
    Full,
    Headers,
}

/// <summary>Where a message came from.</summary>
public enum MessageOrigin
{
    Smtp,
    Submit,
    Sendmail,
    Bounce,
}

/// <summary>One envelope recipient with its own delivery state (retries are per recipient).</summary>
public sealed class EnvelopeRecipient
{
    public required string Address { get; set; }
    public RecipientState State { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset? NextAttempt { get; set; }
    /// <summary>The last attempt's result in one line: "550 5.1.1 no such user", or our own reason.</summary>
    public string? LastError { get; set; }
    /// <summary>The last attempt's RFC 3463 status ("5.1.1"), for a DSN's Status field.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Status { get; set; }
    /// <summary>The remote server's last reply, verbatim ("550 5.1.1 no such user"); null when no server answered.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? LastReply { get; set; }
    /// <summary>The host that gave <see cref="LastReply"/> (a DSN's Remote-MTA).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? RemoteHost { get; set; }
    public DateTimeOffset? Updated { get; set; }
    /// <summary>RFC 3461 ORCPT, kept as given ("rfc822;user@example.org").</summary>
    public string? OriginalRecipient { get; set; }
    public DsnNotify Notify { get; set; }

    [JsonIgnore]
    public bool IsFinal => State is RecipientState.Delivered or RecipientState.Bounced;
}

/// <summary>
/// The envelope of a queued message: everything needed to list, trace and deliver it without
/// reading the body. Stored as JSON in <c>env/&lt;id&gt;</c>.
/// </summary>
public sealed class Envelope
{
    public int Version { get; set; } = 1;
    public string Id { get; set; } = "";
    public DateTimeOffset Arrived { get; set; }
    /// <summary>Envelope sender; empty for the null reverse-path <c>&lt;&gt;</c> (bounces).</summary>
    public string Sender { get; set; } = "";
    public List<EnvelopeRecipient> Recipients { get; set; } = new();
    /// <summary>Body size in octets as stored (CRLF line ends).</summary>
    public long Size { get; set; }
    public string? MessageId { get; set; }
    public string? Subject { get; set; }
    public MessageOrigin Origin { get; set; }
    public string? ClientAddress { get; set; }
    public string? ClientHelo { get; set; }
    public string? AuthenticatedUser { get; set; }
    /// <summary>TLS protocol and cipher of the session that brought the message ("Tls13 TLS_AES_256_GCM_SHA384"); null in clear or not by SMTP.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? ReceivedTls { get; set; }
    /// <summary>Seconds from MAIL FROM to the commit (the log's before-queue delay); null when unknown.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? ReceiveSeconds { get; set; }
    /// <summary>RFC 3461 ENVID.</summary>
    public string? EnvelopeId { get; set; }
    public DsnReturn Return { get; set; }
    public bool EightBit { get; set; }
    public bool SmtpUtf8 { get; set; }
    /// <summary>Every recipient is final and a delivery report is still to be queued before the message leaves (docs/queue.md).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool ReportDue { get; set; }
    /// <summary>The sender was told once that this message is delayed (DelayWarningAfter); never again.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool DelayWarned { get; set; }

    [JsonIgnore]
    public bool IsBounce => Sender.Length == 0;

    /// <summary>
    /// Read with a release marker applied: the held recipients shown here as released are still
    /// held in the file, and the marker goes once this envelope is written back.
    /// </summary>
    [JsonIgnore]
    internal bool ReleasePending { get; set; }
}
