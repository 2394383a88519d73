using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using MailOps.Core.Config;
using MailOps.Core.Queue;

namespace MailOps.Core.Smtp;

/// <summary>
/// A fault rule of a test server (the configuration's Rules, Start-MailServer -Rule; docs/testing.md):
/// at one stage of an SMTP session, for the senders, recipients and subjects it names, the listener
/// answers a given reply instead of its own, waits before replying, or drops the connection.
/// </summary>
public sealed class FaultRule
{
    /// <summary>Connect (the greeting), Helo (HELO/EHLO), Mail, Rcpt or Data (the reply after the message).</summary>
    public string Stage { get; set; } = "Rcpt";
    /// <summary>The envelope sender (MAIL FROM), * and ? allowed, case ignored; null: any.</summary>
    public string? Sender { get; set; }
    /// <summary>At Rcpt the recipient, at Data any recipient of the message; null: any.</summary>
    public string? Recipient { get; set; }
    /// <summary>The message's Subject (Data only); null: any.</summary>
    public string? Subject { get; set; }
    /// <summary>The reply given instead of the listener's own ("451 4.3.0 Try again later").</summary>
    public string? Reply { get; set; }
    /// <summary>How long to wait before replying (or before dropping).</summary>
    [JsonConverter(typeof(DurationConverter))] public TimeSpan Delay { get; set; }
    /// <summary>Close the connection without a reply.</summary>
    public bool Drop { get; set; }
    /// <summary>Apply this many times, then no more; null: always.</summary>
    public int? Times { get; set; }

    internal static readonly string[] Stages = ["Connect", "Helo", "Mail", "Rcpt", "Data"];
    private static readonly Regex ReplyShape = new(@"^[2-5][0-9][0-9]( .*)?$", RegexOptions.CultureInvariant);

    /// <summary>What is wrong with the rule, or null.</summary>
    internal string? Problem()
    {
        if (!Stages.Contains(Stage, StringComparer.OrdinalIgnoreCase)) return $"Stage '{Stage}' is not one of {string.Join(", ", Stages)}.";
        if (Reply is not null && (!ReplyShape.IsMatch(Reply) || Reply.Contains('\r') || Reply.Contains('\n')))
            return $"Reply '{Reply}' is not one SMTP reply line (a code 200-599, then text).";
        if (Reply is not null && Drop) return "a rule either replies or drops the connection, not both.";
        if (Reply is null && !Drop && Delay == TimeSpan.Zero) return "a rule needs a Reply, Drop or a Delay.";
        if (Delay < TimeSpan.Zero || Delay > TimeSpan.FromMinutes(10)) return "Delay must be between 0 and 10 minutes.";
        if (Times is <= 0) return "Times must be positive.";
        if (Subject is not null && !Stage.Equals("Data", StringComparison.OrdinalIgnoreCase)) return "Subject can only be matched at the Data stage.";
        if (Recipient is not null && !(Stage.Equals("Rcpt", StringComparison.OrdinalIgnoreCase) || Stage.Equals("Data", StringComparison.OrdinalIgnoreCase)))
            return "Recipient can only be matched at the Rcpt and Data stages.";
        if (Sender is not null && (Stage.Equals("Connect", StringComparison.OrdinalIgnoreCase) || Stage.Equals("Helo", StringComparison.OrdinalIgnoreCase)))
            return "Sender can only be matched from the Mail stage on.";
        return null;
    }

    public override string ToString() =>
        $"{Stage}{(Sender is null ? "" : " from " + Sender)}{(Recipient is null ? "" : " to " + Recipient)}{(Subject is null ? "" : " subject " + Subject)}: "
        + (Drop ? "drop" : Reply ?? "delay") + (Delay > TimeSpan.Zero ? $" after {Delay.TotalMilliseconds} ms" : "") + (Times is { } t ? $", {t} times" : "");
}

/// <summary>The rules of one listener context, with how often each has still to apply.</summary>
internal sealed class FaultRules
{
    private readonly FaultRule[] _rules;
    private readonly int[] _left;

    public FaultRules(IReadOnlyList<FaultRule> rules)
    {
        _rules = rules.ToArray();
        _left = _rules.Select(r => r.Times ?? int.MaxValue).ToArray();
    }

    public bool IsEmpty => _rules.Length == 0;

    /// <summary>The first rule for this stage that matches and has not run out (and counts it), or null.</summary>
    public FaultRule? Match(string stage, string? sender, IEnumerable<string> recipients, string? subject)
    {
        for (int i = 0; i < _rules.Length; i++)
        {
            var r = _rules[i];
            if (!r.Stage.Equals(stage, StringComparison.OrdinalIgnoreCase)) continue;
            if (r.Sender is { } s && (sender is null || !Wildcard.IsMatch(sender, s))) continue;
            if (r.Recipient is { } p && !recipients.Any(a => Wildcard.IsMatch(a, p))) continue;
            if (r.Subject is { } j && (subject is null || !Wildcard.IsMatch(subject, j))) continue;
            if (Volatile.Read(ref _left[i]) != int.MaxValue && Interlocked.Decrement(ref _left[i]) < 0) continue;
            return r;
        }
        return null;
    }
}
