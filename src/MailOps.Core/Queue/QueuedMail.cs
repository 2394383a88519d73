namespace MailOps.Core.Queue;

/// <summary>The states an operator sees (docs/queue.md).</summary>
public enum MessageState
{
    Queued,
    Active,
    Deferred,
    Held,
    Bounced,
    /// <summary>Only in the journal: the message has left the queue.</summary>
    Delivered,
}

/// <summary>
/// A queued message as listed: its envelope plus the derived operator state. This is the
/// object behind <c>Get-MailQueue</c> and <c>mailops queue</c>.
/// </summary>
public sealed class QueuedMail
{
    private readonly Envelope _envelope;

    internal QueuedMail(Envelope envelope, bool active, DateTimeOffset now, string queuePath)
    {
        _envelope = envelope;
        QueuePath = queuePath;
        Kind = DeriveState(envelope, active);
        Age = now - envelope.Arrived;
    }

    // Every public property is a scalar (a string, a number, a time), so the object goes whole
    // and readable into Export-Csv, ConvertTo-Json, Group-Object and Out-GridView. Lists and the
    // envelope itself are methods: there when a script wants them, out of the way otherwise.

    /// <summary>The committed envelope as read (per-recipient state, DSN parameters, client).</summary>
    public Envelope GetEnvelope() => _envelope;
    internal Envelope Envelope => _envelope;
    public string Id => _envelope.Id;
    /// <summary>The queue it is in, so that the next command of a pipeline acts on the same queue.</summary>
    public string QueuePath { get; }
    /// <summary>Queued, Active, Deferred, Held or Bounced (a name, so JSON and CSV say it in words).</summary>
    public string State => Kind.ToString();
    internal MessageState Kind { get; }
    /// <summary>Envelope sender; "&lt;&gt;" for the null sender.</summary>
    public string Sender => _envelope.IsBounce ? "<>" : _envelope.Sender;
    /// <summary>The envelope recipients, comma-separated (<see cref="GetRecipients"/> for the list).</summary>
    public string Recipients => string.Join(", ", GetRecipients());
    public int RecipientCount => _envelope.Recipients.Count;
    public string[] GetRecipients() => _envelope.Recipients.Select(r => r.Address).ToArray();
    public long Size => _envelope.Size;
    public DateTimeOffset Arrived => _envelope.Arrived;
    public TimeSpan Age { get; }
    // Loops, not LINQ: a listing of a long queue reads these for every message.
    public int Attempts
    {
        get
        {
            int most = 0;
            foreach (var r in _envelope.Recipients) most = Math.Max(most, r.Attempts);
            return most;
        }
    }

    /// <summary>The earliest next attempt of a recipient still waiting.</summary>
    public DateTimeOffset? NextAttempt
    {
        get
        {
            DateTimeOffset? next = null;
            foreach (var r in _envelope.Recipients)
                if (r.State is RecipientState.Pending or RecipientState.Deferred && r.NextAttempt is { } at && (next is null || at < next))
                    next = at;
            return next;
        }
    }

    /// <summary>The error of the recipient updated last (the first of those updated at the same time).</summary>
    public string? LastError
    {
        get
        {
            EnvelopeRecipient? latest = null;
            foreach (var r in _envelope.Recipients)
                if (r.LastError is not null && (latest is null || Nullable.Compare(r.Updated, latest.Updated) > 0))
                    latest = r;
            return latest?.LastError;
        }
    }

    public string? MessageId => _envelope.MessageId;
    public string? Subject => _envelope.Subject;

    /// <summary>Domains of the recipients that still wait for delivery.</summary>
    public string[] GetPendingDomains() => PendingDomains.ToArray();

    internal IEnumerable<string> PendingDomains => _envelope.Recipients
        .Where(r => !r.IsFinal)
        .Select(r => DomainOf(r.Address))
        .Distinct(StringComparer.OrdinalIgnoreCase);

    internal static string DomainOf(string address)
    {
        int at = address.LastIndexOf('@');
        return at < 0 ? "" : address[(at + 1)..].ToLowerInvariant();
    }

    private static MessageState DeriveState(Envelope e, bool active)
    {
        var rs = e.Recipients;
        if (rs.Any(r => r.State == RecipientState.Held)) return MessageState.Held;
        if (active) return MessageState.Active;
        if (rs.Count > 0 && rs.All(r => r.IsFinal))
            return rs.Any(r => r.State == RecipientState.Bounced) ? MessageState.Bounced : MessageState.Delivered;
        if (rs.Any(r => r.State == RecipientState.Deferred)) return MessageState.Deferred;
        return MessageState.Queued;
    }
}

/// <summary>Which messages a listing returns. Every criterion that is set must match.</summary>
public sealed class QueueFilter
{
    public IReadOnlyCollection<string>? Ids { get; init; }
    /// <summary>Queue id patterns ('*' and '?' wildcards); a message matching any of them matches.</summary>
    public IReadOnlyCollection<string>? IdPatterns { get; init; }
    public MessageState? State { get; init; }
    /// <summary>Sender address; '*' and '?' wildcards, case-insensitive.</summary>
    public string? Sender { get; init; }
    /// <summary>Any recipient address; '*' and '?' wildcards, case-insensitive.</summary>
    public string? Recipient { get; init; }
    /// <summary>Domain of any recipient still waiting for delivery.</summary>
    public string? Domain { get; init; }
    public TimeSpan? OlderThan { get; init; }

    /// <summary>
    /// Lower-case ASCII bytes that the stored envelope of every matching message contains: the
    /// longest run of letters, digits and . @ _ - in the sender, recipient, domain or id pattern
    /// (characters JSON may escape are left out); else, for a state that needs a recipient in a
    /// state of that name (Held, Deferred, Bounced), that recipient's "state" as the queue writes
    /// it. Null when there is none worth searching for.
    /// </summary>
    internal byte[]? Needle() =>
        Wildcard.Needle([Sender, Recipient, Domain, IdPatterns is { Count: 1 } one ? one.First() : null])
        ?? (State is MessageState.Held or MessageState.Deferred or MessageState.Bounced
            ? System.Text.Encoding.ASCII.GetBytes($"\"state\":\"{State.Value.ToString().ToLowerInvariant()}\"")
            : null);

    internal bool Matches(QueuedMail m)
    {
        if (State is { } s && m.Kind != s) return false;
        if (IdPatterns is not null && !IdPatterns.Any(p => Wildcard.IsMatch(m.Id, p))) return false;
        if (Sender is not null && !Wildcard.IsMatch(m.Sender, Sender)) return false;
        if (Recipient is not null && !m.Envelope.Recipients.Any(r => Wildcard.IsMatch(r.Address, Recipient))) return false;
        if (Domain is not null && !m.PendingDomains.Any(d => Wildcard.IsMatch(d, Domain))) return false;
        if (OlderThan is { } age && m.Age < age) return false;
        return true;
    }
}

internal static class Wildcard
{
    /// <summary>
    /// Lower-case ASCII bytes that any text matching one of <paramref name="patterns"/> (all of
    /// which must match) contains: the longest run of at least three letters, digits and . @ _ -
    /// (characters JSON may escape are left out). Null when there is none.
    /// </summary>
    public static byte[]? Needle(IEnumerable<string?> patterns)
    {
        string? best = null;
        foreach (var pattern in patterns)
        {
            if (pattern is null) continue;
            int start = 0;
            for (int i = 0; i <= pattern.Length; i++)
            {
                if (i < pattern.Length && (char.IsAsciiLetterOrDigit(pattern[i]) || pattern[i] is '.' or '@' or '_' or '-')) continue;
                if (i - start > (best?.Length ?? 2)) best = pattern[start..i];
                start = i + 1;
            }
        }
        return best is null ? null : System.Text.Encoding.ASCII.GetBytes(best.ToLowerInvariant());
    }

    /// <summary>Case-insensitive match with '*' (any run) and '?' (one character).</summary>
    public static bool IsMatch(string text, string pattern)
    {
        int t = 0, p = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || char.ToLowerInvariant(pattern[p]) == char.ToLowerInvariant(text[t])))
            { t++; p++; }
            else if (p < pattern.Length && pattern[p] == '*')
            { star = p++; mark = t; }
            else if (star >= 0)
            { p = star + 1; t = ++mark; }
            else return false;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }
}
