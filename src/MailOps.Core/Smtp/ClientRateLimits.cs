using System.Net;
using MailOps.Core.Config;

namespace MailOps.Core.Smtp;

/// <summary>
/// Postfix's anvil: how many connections, messages and recipients one client (an IPv4 address,
/// or the /64 of an IPv6 address) started in the current minute, against RateLimits. Fixed
/// one-minute windows; the table is bounded (old windows are dropped as it grows).
/// </summary>
internal sealed class ClientRateLimits(RateLimitSettings settings, TimeProvider? clock = null)
{
    public enum Kind { Connection, Message, Recipient }

    private const int MaxClients = 100_000;
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly Dictionary<(Kind, UInt128), (long Window, int Count)> _counts = new();

    /// <summary>Counts one more event of <paramref name="kind"/> for <paramref name="client"/>; false (and not counted) when that would pass its limit.</summary>
    public bool TryCount(Kind kind, IPAddress? client)
    {
        int limit = kind switch
        {
            Kind.Connection => settings.ConnectionsPerMinute,
            Kind.Message => settings.MessagesPerMinute,
            _ => settings.RecipientsPerMinute,
        };
        if (limit <= 0) return true;
        long window = _clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        var key = (kind, AuthGuard.Key(client));
        lock (_counts)
        {
            if (_counts.Count >= MaxClients)
                foreach (var stale in _counts.Where(e => e.Value.Window != window).Select(e => e.Key).ToList()) _counts.Remove(stale);
            var (at, count) = _counts.TryGetValue(key, out var entry) && entry.Window == window ? entry : (window, 0);
            if (count >= limit) return false;
            _counts[key] = (at, count + 1);
            return true;
        }
    }
}
