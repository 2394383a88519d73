using System.Net;
using DnsClient;

namespace MailOps.Core.Dns;

/// <summary>A DnsServers entry: an address with an optional port ("127.0.0.1:5353", "[::1]:53", "10.0.0.2").</summary>
public static class DnsEndpoint
{
    public static bool TryParse(string text, out IPEndPoint endpoint)
    {
        endpoint = null!;
        text = text.Trim();
        if (IPAddress.TryParse(text, out var bare) && !text.StartsWith('['))
        {
            endpoint = new IPEndPoint(bare, 53);
            return true;
        }
        if (!IPEndPoint.TryParse(text, out var parsed)) return false;
        endpoint = parsed.Port == 0 ? new IPEndPoint(parsed.Address, 53) : parsed;
        return true;
    }

    /// <summary>
    /// The resolver delivery uses: the configured servers (or the system's), answers cached for
    /// their TTL, DNS errors returned rather than thrown so that NXDOMAIN and SERVFAIL can be told
    /// apart (docs/delivery.md: one bounces, the other defers).
    /// </summary>
    /// <param name="servers">DnsServers entries; empty: the system's resolvers.</param>
    /// <param name="timeout">Per query (3 s unless given: blocklists want less).</param>
    /// <param name="retries">Tries after the first.</param>
    public static ILookupClient CreateClient(IReadOnlyCollection<string> servers, TimeSpan? timeout = null, int retries = 1)
    {
        var endpoints = servers.Select(s => TryParse(s, out var e) ? e : throw new ArgumentException($"'{s}' is not a DNS server address.")).ToArray();
        var options = endpoints.Length > 0 ? new LookupClientOptions(endpoints) : new LookupClientOptions();
        options.UseCache = true;
        options.Timeout = timeout ?? TimeSpan.FromSeconds(3);
        options.Retries = retries;
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;
        options.ContinueOnEmptyResponse = false;
        options.UseTcpFallback = true;
        // The DO bit: a validating resolver then says (AD) which answers DNSSEC vouches for (DANE).
        options.RequestDnsSecRecords = true;
        return new LookupClient(options);
    }
}
