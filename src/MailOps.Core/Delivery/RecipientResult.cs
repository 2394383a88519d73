using System.Text.RegularExpressions;

namespace MailOps.Core.Delivery;

/// <summary>What happened to one recipient in one delivery attempt (docs/delivery.md: 2xx delivered, 4xx deferred, 5xx bounced).</summary>
public enum DeliveryOutcome
{
    Delivered,
    Deferred,
    Bounced,
}

/// <summary>The result of one recipient's attempt, as recorded in the envelope, the journal and a DSN.</summary>
public sealed record RecipientResult
{
    public required string Recipient { get; init; }
    public required DeliveryOutcome Outcome { get; init; }
    /// <summary>RFC 3463 enhanced status code: "2.0.0", "5.1.1", "4.4.1".</summary>
    public required string EnhancedCode { get; init; }
    /// <summary>The remote reply code (250, 550 ...), or null when no server answered for this recipient.</summary>
    public int? ReplyCode { get; init; }
    /// <summary>The reply text, or our own reason when there was no reply.</summary>
    public required string Detail { get; init; }
    /// <summary>The host that answered (Remote-MTA of a DSN), or "maildir" for local delivery.</summary>
    public string? Host { get; init; }
    public string? Address { get; init; }
    public string? Tls { get; init; }
    /// <summary>Transmission: MAIL FROM to the final reply (or the Maildir write).</summary>
    public double? DurationMs { get; init; }
    /// <summary>Setting up the connection this attempt went over (0 when it was reused); null for local delivery.</summary>
    public double? ConnectMs { get; init; }

    /// <summary>"550 5.1.1" when a server replied, else the enhanced code alone.</summary>
    public string Status => ReplyCode is { } code ? $"{code} {EnhancedCode}" : EnhancedCode;

    /// <summary>One line for LastError, the journal and Diagnostic-Code.</summary>
    public string Summary => ReplyCode is { } code ? $"{code} {EnhancedCode} {Detail}" : $"{EnhancedCode} {Detail}";

    /// <summary>A result without a server reply: <paramref name="enhancedCode"/> decides the outcome.</summary>
    public static RecipientResult Local(string recipient, string enhancedCode, string detail, string? host = null) => new()
    {
        Recipient = recipient,
        Outcome = OutcomeOf(enhancedCode[0]),
        EnhancedCode = enhancedCode,
        Detail = detail,
        Host = host,
    };

    /// <summary>A result from an SMTP reply; the enhanced code is taken from the text (RFC 2034) or derived from the class.</summary>
    public static RecipientResult FromReply(string recipient, int replyCode, string text, string? host, string? address, string? tls, double durationMs)
    {
        text = text.Replace("\r", " ").Replace("\n", " ").Trim();
        string enhanced;
        var m = EnhancedPattern.Match(text);
        if (m.Success && m.Groups[1].Value[0] == (char)('0' + replyCode / 100))
        {
            enhanced = m.Groups[1].Value;
            text = text[m.Length..].TrimStart();
        }
        else
        {
            enhanced = $"{replyCode / 100}.0.0";
        }
        return new RecipientResult
        {
            Recipient = recipient,
            Outcome = OutcomeOf((char)('0' + replyCode / 100)),
            ReplyCode = replyCode,
            EnhancedCode = enhanced,
            Detail = text,
            Host = host,
            Address = address,
            Tls = tls,
            DurationMs = durationMs,
        };
    }

    private static DeliveryOutcome OutcomeOf(char replyClass) => replyClass switch
    {
        '2' => DeliveryOutcome.Delivered,
        '5' => DeliveryOutcome.Bounced,
        _ => DeliveryOutcome.Deferred, // 4xx, and anything a server should not have said
    };

    private static readonly Regex EnhancedPattern = new(@"^([245]\.\d{1,3}\.\d{1,3})(?=\s|$)", RegexOptions.CultureInvariant);
}
