using MailOps.Core.Config;

namespace MailOps.Core.Delivery;

/// <summary>
/// When a deferred recipient is tried again, and when the queue gives up (docs/configuration.md RetrySchedule,
/// QueueLifetime; docs/delivery.md). Without a schedule it is qmail-send's: retry n comes at arrival +
/// (20 s × n)², i.e. 6 min 40 s, 26 min 40 s, 1 h, 1 h 46 min ... after arrival. A retry is never
/// planned past the lifetime: the last one comes at the deadline, and a failure after it bounces.
/// </summary>
public sealed class RetryPolicy
{
    private readonly IReadOnlyList<TimeSpan>? _schedule;

    public RetryPolicy(IReadOnlyList<TimeSpan>? schedule, TimeSpan lifetime)
    {
        _schedule = schedule is { Count: > 0 } ? schedule : null;
        Lifetime = lifetime;
    }

    public static RetryPolicy From(MailOpsConfig config) => new(
        config.RetrySchedule?.Select(s => Duration.TryParse(s, out var d) ? d : throw new ConfigException($"RetrySchedule: '{s}'")).ToList(),
        config.QueueLifetime);

    public TimeSpan Lifetime { get; }

    /// <summary>
    /// The next attempt after the <paramref name="attempts"/>-th failure (1 = the first attempt
    /// failed), or null when the message is past its lifetime and the recipient must bounce.
    /// </summary>
    public DateTimeOffset? NextAttempt(DateTimeOffset arrived, int attempts, DateTimeOffset now)
    {
        var deadline = arrived + Lifetime;
        if (now >= deadline) return null;
        DateTimeOffset next;
        if (_schedule is not null)
        {
            next = now + _schedule[Math.Min(attempts, _schedule.Count) - 1];
        }
        else
        {
            next = arrived + Quadratic(attempts);
            // Late (the server was down, or the mail was held): keep the schedule's spacing from now.
            if (next <= now) next = now + (Quadratic(attempts) - Quadratic(attempts - 1));
        }
        return next > deadline ? deadline : next;
    }

    private static TimeSpan Quadratic(int n) => TimeSpan.FromSeconds(400.0 * n * n);
}
