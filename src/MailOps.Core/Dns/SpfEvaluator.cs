using System.Net;
using System.Net.Sockets;
using System.Text;
using DnsClient;
using DnsClient.Protocol;

namespace MailOps.Core.Dns;

/// <summary>The results of RFC 7208 §2.6.</summary>
public enum SpfResult { None, Neutral, Pass, Fail, SoftFail, TempError, PermError }

/// <summary>
/// SPF's check_host() (RFC 7208) over the same resolver as delivery: the mechanisms all, include,
/// a, mx, ptr, ip4, ip6 and exists, the redirect modifier, macros (§7), and the limits of §4.6.4:
/// at most 10 DNS-querying terms, 10 MX or PTR names per term, 2 lookups that find nothing.
/// </summary>
public sealed class SpfEvaluator(ILookupClient dns)
{
    private const int MaxLookups = 10, MaxVoidLookups = 2, MaxNames = 10;

    private sealed class State(IPAddress ip, string sender, string helo)
    {
        public IPAddress Ip { get; } = ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip;
        public string Sender { get; } = sender;
        public string Helo { get; } = helo;
        public int Lookups;
        public int VoidLookups;
    }

    private sealed class SpfException(SpfResult result, string reason) : Exception(reason)
    {
        public SpfResult Result { get; } = result;
    }

    /// <summary>The SPF result for <paramref name="ip"/> sending as <paramref name="sender"/> (postmaster@HELO for the null sender) from <paramref name="domain"/>, and why.</summary>
    public async Task<(SpfResult Result, string Detail)> CheckHostAsync(IPAddress ip, string domain, string sender, string helo, CancellationToken cancellationToken = default)
    {
        var state = new State(ip, sender.Length == 0 ? "postmaster@" + helo : sender, helo);
        try
        {
            return await CheckAsync(state, domain.Trim().TrimEnd('.').ToLowerInvariant(), cancellationToken).ConfigureAwait(false);
        }
        catch (SpfException ex)
        {
            return (ex.Result, ex.Message);
        }
    }

    private async Task<(SpfResult, string)> CheckAsync(State state, string domain, CancellationToken cancellationToken)
    {
        if (domain.Length == 0 || !domain.Contains('.') || domain.Split('.').Any(l => l.Length is 0 or > 63))
            return (SpfResult.None, $"'{domain}' is not a domain name");
        var txt = await QueryAsync(state, domain, QueryType.TXT, countsAsVoid: false, cancellationToken).ConfigureAwait(false);
        if (txt is null) return (SpfResult.None, $"{domain} does not exist");
        var records = txt.TxtRecords().Select(t => string.Concat(t.Text)).Where(t => t.Equals("v=spf1", StringComparison.OrdinalIgnoreCase) || t.StartsWith("v=spf1 ", StringComparison.OrdinalIgnoreCase)).ToList();
        if (records.Count == 0) return (SpfResult.None, $"{domain} publishes no SPF record");
        if (records.Count > 1) return (SpfResult.PermError, $"{domain} publishes {records.Count} SPF records");

        string? redirect = null;
        foreach (var term in records[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            int eq = term.IndexOf('='), colon = term.IndexOf(':');
            if (eq > 0 && (colon < 0 || eq < colon) && char.IsAsciiLetter(term[0]))
            {
                string name = term[..eq].ToLowerInvariant();
                if (name == "redirect") redirect = redirect is null ? term[(eq + 1)..] : throw new SpfException(SpfResult.PermError, "two redirect= modifiers");
                continue; // exp= and unknown modifiers change nothing here
            }
            var qualifier = term[0] switch { '-' => SpfResult.Fail, '~' => SpfResult.SoftFail, '?' => SpfResult.Neutral, _ => SpfResult.Pass };
            string mechanism = term[0] is '+' or '-' or '~' or '?' ? term[1..] : term;
            if (await MatchesAsync(state, domain, mechanism, cancellationToken).ConfigureAwait(false))
                return (qualifier, $"{domain}: {term} matched {state.Ip}");
        }
        if (redirect is null) return (SpfResult.Neutral, $"{domain}: no mechanism matched {state.Ip}");
        Count(state);
        var (result, detail) = await CheckAsync(state, Expand(state, redirect, domain), cancellationToken).ConfigureAwait(false);
        return result == SpfResult.None ? (SpfResult.PermError, "redirect= to a domain without SPF: " + detail) : (result, detail);
    }

    private async Task<bool> MatchesAsync(State state, string domain, string mechanism, CancellationToken cancellationToken)
    {
        int colon = mechanism.IndexOf(':');
        string name = (colon >= 0 ? mechanism[..colon] : mechanism.Split('/')[0]).ToLowerInvariant();
        string? argument = colon >= 0 ? mechanism[(colon + 1)..] : null;
        switch (name)
        {
            case "all":
                return true;
            case "ip4" or "ip6":
            {
                var family = name == "ip4" ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
                int slash = argument?.IndexOf('/') ?? -1;
                int max = family == AddressFamily.InterNetwork ? 32 : 128, prefix = max;
                if (argument is null || !IPAddress.TryParse(slash >= 0 ? argument[..slash] : argument, out var network) || network.AddressFamily != family
                    || (slash >= 0 && (!int.TryParse(argument[(slash + 1)..], out prefix) || prefix < 0 || prefix > max)))
                    throw new SpfException(SpfResult.PermError, $"bad {name} '{mechanism}'");
                return InNetwork(state.Ip, network, prefix);
            }
            case "include":
            {
                if (argument is null) throw new SpfException(SpfResult.PermError, "include without a domain");
                Count(state);
                var (result, detail) = await CheckAsync(state, Expand(state, argument, domain), cancellationToken).ConfigureAwait(false);
                return result switch
                {
                    SpfResult.Pass => true,
                    SpfResult.TempError => throw new SpfException(SpfResult.TempError, detail),
                    SpfResult.PermError or SpfResult.None => throw new SpfException(SpfResult.PermError, "include: " + detail),
                    _ => false,
                };
            }
            case "a" or "mx":
            {
                Count(state);
                var (target, cidr4, cidr6) = TargetAndCidrs(state, mechanism[name.Length..], domain);
                var hosts = new List<string>();
                if (name == "a") hosts.Add(target);
                else
                {
                    var mx = await QueryAsync(state, target, QueryType.MX, countsAsVoid: true, cancellationToken).ConfigureAwait(false);
                    hosts.AddRange(mx?.MxRecords().Select(r => r.Exchange.Value.TrimEnd('.')) ?? []);
                    if (hosts.Count > MaxNames) throw new SpfException(SpfResult.PermError, $"{target} has more than {MaxNames} MX hosts");
                }
                foreach (var host in hosts)
                    foreach (var address in await AddressesAsync(state, host, cancellationToken).ConfigureAwait(false))
                        if (InNetwork(state.Ip, address, address.AddressFamily == AddressFamily.InterNetwork ? cidr4 : cidr6)) return true;
                return false;
            }
            case "ptr":
            {
                Count(state);
                string target = argument is null ? domain : Expand(state, argument, domain);
                var ptr = await QueryAsync(state, state.Ip.GetArpaName().TrimEnd('.'), QueryType.PTR, countsAsVoid: true, cancellationToken).ConfigureAwait(false);
                foreach (var host in (ptr?.PtrRecords().Select(p => p.PtrDomainName.Value.TrimEnd('.').ToLowerInvariant()) ?? []).Take(MaxNames))
                    if ((host == target || host.EndsWith("." + target, StringComparison.Ordinal)) && (await AddressesAsync(state, host, cancellationToken).ConfigureAwait(false)).Contains(state.Ip))
                        return true;
                return false;
            }
            case "exists":
            {
                if (argument is null) throw new SpfException(SpfResult.PermError, "exists without a domain");
                Count(state);
                var a = await QueryAsync(state, Expand(state, argument, domain), QueryType.A, countsAsVoid: true, cancellationToken).ConfigureAwait(false);
                return a?.ARecords().Any() == true;
            }
            default:
                throw new SpfException(SpfResult.PermError, $"unknown mechanism '{mechanism}'");
        }
    }

    /// <summary>The a/mx argument: ":domain" and "/cidr4" and "//cidr6", each optional.</summary>
    private static (string Target, int Cidr4, int Cidr6) TargetAndCidrs(State state, string rest, string domain)
    {
        int cidr4 = 32, cidr6 = 128;
        int slash = rest.IndexOf('/');
        string spec = slash >= 0 ? rest[..slash] : rest, cidrs = slash >= 0 ? rest[slash..] : "";
        if (cidrs.Length > 0)
        {
            var parts = cidrs.Split("//");
            if (parts[0].Length > 0 && (!int.TryParse(parts[0].TrimStart('/'), out cidr4) || cidr4 is < 0 or > 32)) throw new SpfException(SpfResult.PermError, $"bad cidr '{rest}'");
            if (parts.Length > 1 && (!int.TryParse(parts[1], out cidr6) || cidr6 is < 0 or > 128)) throw new SpfException(SpfResult.PermError, $"bad cidr '{rest}'");
        }
        return (spec.StartsWith(':') ? Expand(state, spec[1..], domain) : domain, cidr4, cidr6);
    }

    /// <summary>Whether <paramref name="ip"/> is in <paramref name="network"/>/<paramref name="prefix"/> (host bits of the network ignored, as records write them).</summary>
    private static bool InNetwork(IPAddress ip, IPAddress network, int prefix)
    {
        if (ip.AddressFamily != network.AddressFamily) return false;
        byte[] a = ip.GetAddressBytes(), b = network.GetAddressBytes();
        for (int i = 0; i < a.Length && prefix > 0; i++, prefix -= 8)
        {
            int mask = prefix >= 8 ? 0xFF : (0xFF << (8 - prefix)) & 0xFF;
            if ((a[i] & mask) != (b[i] & mask)) return false;
        }
        return true;
    }

    private static void Count(State state)
    {
        if (++state.Lookups > MaxLookups) throw new SpfException(SpfResult.PermError, $"more than {MaxLookups} DNS-querying terms (RFC 7208 §4.6.4)");
    }

    private async Task<List<IPAddress>> AddressesAsync(State state, string host, CancellationToken cancellationToken)
    {
        var type = state.Ip.AddressFamily == AddressFamily.InterNetwork ? QueryType.A : QueryType.AAAA;
        var answer = await QueryAsync(state, host, type, countsAsVoid: true, cancellationToken).ConfigureAwait(false);
        return answer is null ? [] : [.. answer.ARecords().Select(a => a.Address), .. answer.AaaaRecords().Select(a => a.Address)];
    }

    /// <summary>The answers, or null for NXDOMAIN; a lookup that fails is TempError, and more than two that find nothing are PermError.</summary>
    private async Task<IReadOnlyList<DnsResourceRecord>?> QueryAsync(State state, string name, QueryType type, bool countsAsVoid, CancellationToken cancellationToken)
    {
        IDnsQueryResponse response;
        try
        {
            response = await dns.CountedQueryAsync(name, type, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DnsResponseException or SocketException or IOException or TimeoutException)
        {
            throw new SpfException(SpfResult.TempError, $"the {type} lookup of {name} failed: {ex.Message}");
        }
        bool nx = response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain;
        if (response.HasError && !nx) throw new SpfException(SpfResult.TempError, $"the {type} lookup of {name} failed: {response.ErrorMessage}");
        var answers = nx ? null : response.Answers;
        if (countsAsVoid && (answers is null || !answers.Any(a => a.RecordType == (ResourceRecordType)type)) && ++state.VoidLookups > MaxVoidLookups)
            throw new SpfException(SpfResult.PermError, $"more than {MaxVoidLookups} lookups found nothing (RFC 7208 §4.6.4)");
        return answers;
    }

    /// <summary>Macro expansion (RFC 7208 §7): %{s l o d i p h v} with digits, r and delimiters, %%, %_ and %-.</summary>
    private static string Expand(State state, string spec, string domain)
    {
        if (!spec.Contains('%')) return spec.TrimEnd('.').ToLowerInvariant();
        var sb = new StringBuilder();
        for (int i = 0; i < spec.Length; i++)
        {
            if (spec[i] != '%') { sb.Append(spec[i]); continue; }
            if (++i >= spec.Length) throw new SpfException(SpfResult.PermError, $"bad macro in '{spec}'");
            switch (spec[i])
            {
                case '%': sb.Append('%'); continue;
                case '_': sb.Append(' '); continue;
                case '-': sb.Append("%20"); continue;
                case '{': break;
                default: throw new SpfException(SpfResult.PermError, $"bad macro in '{spec}'");
            }
            int end = spec.IndexOf('}', i);
            if (end < 0 || end == i + 1) throw new SpfException(SpfResult.PermError, $"bad macro in '{spec}'");
            string body = spec[(i + 1)..end];
            i = end;
            int at = state.Sender.LastIndexOf('@');
            string value = char.ToLowerInvariant(body[0]) switch
            {
                's' => state.Sender,
                'l' => at > 0 ? state.Sender[..at] : "postmaster",
                'o' => at >= 0 ? state.Sender[(at + 1)..] : state.Sender,
                'd' => domain,
                'i' => state.Ip.AddressFamily == AddressFamily.InterNetwork ? state.Ip.ToString() : string.Join('.', Convert.ToHexString(state.Ip.GetAddressBytes()).ToLowerInvariant().ToCharArray()),
                'p' => "unknown",
                'h' => state.Helo,
                'v' => state.Ip.AddressFamily == AddressFamily.InterNetwork ? "in-addr" : "ip6",
                _ => throw new SpfException(SpfResult.PermError, $"unknown macro letter in '{spec}'"),
            };
            string rest = body[1..];
            int digits = 0;
            while (digits < rest.Length && char.IsAsciiDigit(rest[digits])) digits++;
            int keep = digits > 0 ? int.Parse(rest[..digits]) : int.MaxValue;
            bool reverse = digits < rest.Length && char.ToLowerInvariant(rest[digits]) == 'r';
            string delimiters = rest[(digits + (reverse ? 1 : 0))..];
            var parts = value.Split(delimiters.Length > 0 ? delimiters.ToCharArray() : ['.']).ToList();
            if (reverse) parts.Reverse();
            if (keep == 0) throw new SpfException(SpfResult.PermError, $"bad macro in '{spec}'");
            sb.Append(string.Join('.', parts.Skip(Math.Max(0, parts.Count - keep))));
        }
        return sb.ToString().TrimEnd('.').ToLowerInvariant();
    }
}
