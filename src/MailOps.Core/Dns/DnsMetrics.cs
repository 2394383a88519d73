using System.Diagnostics.Metrics;
using DnsClient;

namespace MailOps.Core.Dns;

/// <summary>
/// DNS lookups of the whole process (MX, A, AAAA, TLSA, TXT for MTA-STS, SPF, DKIM, DMARC, and
/// blocklists), by record type and result: a counter every server's metrics endpoint serves.
/// </summary>
internal static class DnsMetrics
{
    public const string MeterName = "MailOps.Dns";
    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Lookups = Meter.CreateCounter<long>("mailops.dns.lookups", "{lookup}", "DNS lookups, by record type and result (ok, nxdomain, error).");

    /// <summary>An IN query, counted: what every lookup of MailOps goes through.</summary>
    public static async Task<IDnsQueryResponse> CountedQueryAsync(this IDnsQuery dns, string name, QueryType type, CancellationToken cancellationToken)
    {
        IDnsQueryResponse? response = null;
        try
        {
            response = await dns.QueryAsync(name, type, QueryClass.IN, cancellationToken).ConfigureAwait(false);
            return response;
        }
        finally
        {
            Count(type, response);
        }
    }

    /// <summary>Counts one lookup: its answer, or null when it failed (a timeout, a refused server).</summary>
    private static void Count(QueryType type, IDnsQueryResponse? response)
    {
        string result = response is null ? "error"
            : response.Header.ResponseCode == DnsHeaderResponseCode.NoError ? "ok"
            : response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain ? "nxdomain"
            : "error";
        Lookups.Add(1, new KeyValuePair<string, object?>("type", type.ToString()), new KeyValuePair<string, object?>("result", result));
    }
}
