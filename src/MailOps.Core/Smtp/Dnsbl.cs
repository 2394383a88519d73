using MailOps.Core.Dns;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DnsClient;
using MailOps.Core.Config;

namespace MailOps.Core.Smtp;

/// <summary>
/// DNS blocklists, as postscreen weighs them: each configured zone that lists the client adds its
/// weight, and a client whose sum reaches the threshold is refused before the greeting. A lookup
/// that fails or times out counts as not listed: a blocklist outage never blocks mail. Answers
/// are cached for their TTL by the resolver.
/// </summary>
internal sealed class Dnsbl(DnsblSettings settings, ILookupClient dns)
{
    /// <summary>A resolver for blocklist lookups: a short timeout, one try, cached by TTL.</summary>
    public static ILookupClient CreateClient(IReadOnlyCollection<string> servers) => Dns.DnsEndpoint.CreateClient(servers, TimeSpan.FromSeconds(2), retries: 0);

    /// <summary>The zones that list <paramref name="client"/> when their weights reach the threshold; else null.</summary>
    public async Task<IReadOnlyList<string>?> ListedAsync(IPAddress client, CancellationToken cancellationToken)
    {
        string reversed = Reverse(client);
        var lookups = settings.Zones.Select(async zone =>
        {
            try
            {
                var answer = await dns.CountedQueryAsync($"{reversed}.{zone.Key.Trim('.')}", QueryType.A, cancellationToken).ConfigureAwait(false);
                // 127.255.255.x are the lists' own error codes (a refused or rate-limited resolver), not listings.
                bool listed = !answer.HasError && answer.Answers.ARecords().Any(a => IsListing(a.Address));
                return (Zone: zone.Key, Weight: listed ? zone.Value : 0);
            }
            catch (Exception ex) when (ex is DnsResponseException or SocketException or IOException or TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return (Zone: zone.Key, Weight: 0);
            }
        });
        var results = await Task.WhenAll(lookups).ConfigureAwait(false);
        var listing = results.Where(r => r.Weight > 0).ToList();
        return listing.Sum(r => r.Weight) >= settings.Threshold && listing.Count > 0 ? listing.Select(r => r.Zone).ToList() : null;
    }

    private static bool IsListing(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return bytes.Length == 4 && bytes[0] == 127 && !(bytes[1] == 255 && bytes[2] == 255);
    }

    /// <summary>1.2.3.4 as 4.3.2.1; an IPv6 address as its 32 nibbles, reversed (RFC 5782).</summary>
    internal static string Reverse(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        var bytes = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork) return string.Join('.', Enumerable.Reverse(bytes));
        var sb = new StringBuilder(64);
        for (int i = bytes.Length - 1; i >= 0; i--)
            sb.Append("0123456789abcdef"[bytes[i] & 0xF]).Append('.').Append("0123456789abcdef"[bytes[i] >> 4]).Append('.');
        return sb.ToString(0, sb.Length - 1);
    }
}

/// <summary>
/// Greylisting (optional): the first attempt of a (sender, recipient, client network) triplet is
/// told 450 4.7.1; the same triplet retried after <see cref="GreylistSettings.Delay"/> passes, and a
/// client network that passed <see cref="GreylistSettings.AutoAllowAfter"/> times is no longer
/// greylisted. Kept in memory (a restart greylists again), bounded.
/// </summary>
internal sealed class Greylist(GreylistSettings settings, TimeProvider? clock = null)
{
    private const int MaxEntries = 200_000;
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly Dictionary<(string, string, UInt128), DateTimeOffset> _seen = new();
    private readonly Dictionary<UInt128, int> _passes = new();

    /// <summary>True when the recipient may be accepted now; false: answer 450 4.7.1 (the first attempt is remembered).</summary>
    public bool Allows(string sender, string recipient, IPAddress? client)
    {
        var network = Network(client);
        var now = _clock.GetUtcNow();
        lock (_seen)
        {
            if (_passes.TryGetValue(network, out int passes) && passes >= settings.AutoAllowAfter) return true;
            var key = (sender.ToLowerInvariant(), recipient.ToLowerInvariant(), network);
            if (!_seen.TryGetValue(key, out var first) || now - first > settings.Expire)
            {
                if (_seen.Count >= MaxEntries)
                    foreach (var old in _seen.Where(e => now - e.Value > settings.Delay + TimeSpan.FromHours(1)).Select(e => e.Key).ToList()) _seen.Remove(old);
                _seen[key] = now;
                return false;
            }
            if (now - first < settings.Delay) return false;
            _passes[network] = passes + 1;
            return true;
        }
    }

    /// <summary>The client's /24 (IPv4) or /64 (IPv6): a retry from a neighbouring address of the same pool counts.</summary>
    private static UInt128 Network(IPAddress? client)
    {
        var key = AuthGuard.Key(client);
        return client is not null && (client.AddressFamily == AddressFamily.InterNetwork || client.IsIPv4MappedToIPv6) ? key & ~(UInt128)0xFF : key;
    }
}
