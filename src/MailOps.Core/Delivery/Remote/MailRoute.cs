using System.Net;

namespace MailOps.Core.Delivery.Remote;

/// <summary>How a domain's mail would travel (what <c>mailops mx</c> and Resolve-MailExchanger show).</summary>
public enum RouteKind
{
    /// <summary>Deliver to <see cref="MailRoute.Hosts"/>, in order.</summary>
    Remote,
    /// <summary>A local or virtual domain: Maildir delivery here.</summary>
    Local,
    /// <summary>Cannot be delivered, ever: bounce (<see cref="MailRoute.Status"/> is 5.x.x).</summary>
    Bounce,
    /// <summary>Cannot be delivered now: defer (<see cref="MailRoute.Status"/> is 4.x.x).</summary>
    Defer,
}

/// <summary>One host of a route, with its addresses in the order they are tried.</summary>
public sealed record RouteHost(string Name, int Preference, int Port, IReadOnlyList<IPAddress> Addresses)
{
    /// <summary>Why the host has no address (its lookup failed), or null.</summary>
    public string? Error { get; init; }
    /// <summary>True when <see cref="Error"/> may go away (SERVFAIL, timeout) rather than being an answer (NXDOMAIN, no records).</summary>
    public bool ErrorIsTemporary { get; init; }
    /// <summary>How TLS to this host is required and checked (a TLS policy, DANE, MTA-STS); null: the route's transport decides (opportunistic for MX).</summary>
    public TlsRequirement? Tls { get; init; }
}

/// <summary>
/// How one host's TLS is required and checked, and the name the trace gives it ("DANE", "MTA-STS
/// enforce", "Required" ...): <see cref="Mode"/> says whether TLS is needed and how the certificate
/// is judged (Required and Implicit by the Web PKI, Dane by <see cref="Tlsa"/>).
/// </summary>
public sealed record TlsRequirement(Config.TransportTls Mode, string Policy)
{
    /// <summary>The host's usable, DNSSEC-validated TLSA records when <see cref="Mode"/> is Dane.</summary>
    public IReadOnlyList<DnsClient.Protocol.TlsaRecord> Tlsa { get; init; } = [];
    /// <summary>MTA-STS testing: the certificate is checked and the verdict traced, but the mail goes whatever it is.</summary>
    public bool ReportOnly { get; init; }

    /// <summary>The same checks (a kept connection made under one may serve the other).</summary>
    public bool SameAs(TlsRequirement? other) =>
        other is not null && other.Mode == Mode && other.Policy == Policy && other.ReportOnly == ReportOnly
        && other.Tlsa.Select(t => t.ToString()).SequenceEqual(Tlsa.Select(t => t.ToString()));
}

/// <summary>The outcome of routing one domain.</summary>
public sealed class MailRoute
{
    public required string Domain { get; init; }
    public required RouteKind Kind { get; init; }
    /// <summary>"route", "smarthost", "mx", "implicit-mx" (A/AAAA of the domain), "local".</summary>
    public string Source { get; init; } = "";
    public IReadOnlyList<RouteHost> Hosts { get; init; } = [];
    /// <summary>Enhanced status code when <see cref="Kind"/> is Bounce or Defer ("5.1.10", "4.4.3").</summary>
    public string? Status { get; init; }
    /// <summary>Why the route failed, or notes such as MX hosts dropped because they are this server.</summary>
    public string? Reason { get; init; }
    /// <summary>How to reach a Routes or SmartHost target (TLS mode, credentials, HELO); null for MX delivery (each host's <see cref="RouteHost.Tls"/> says how TLS is checked).</summary>
    public Config.TransportSettings? Transport { get; init; }

    internal static MailRoute Fail(string domain, string status, string reason) => new()
    {
        Domain = domain,
        Kind = status[0] == '5' ? RouteKind.Bounce : RouteKind.Defer,
        Status = status,
        Reason = reason,
    };
}

/// <summary>
/// One row of a route as <c>Resolve-MailExchanger</c> shows it: a host with its preference and
/// addresses, or, for a domain that cannot be routed, the reason alone.
/// </summary>
public sealed class MailExchanger
{
    public required string Domain { get; init; }
    public RouteKind Kind { get; init; }
    /// <summary>"route", "smarthost", "mx", "implicit-mx", "local".</summary>
    public string Source { get; init; } = "";
    /// <summary>1 for the host tried first.</summary>
    public int Order { get; init; }
    public int? Preference { get; init; }
    public string? Host { get; init; }
    public int? Port { get; init; }
    public IReadOnlyList<IPAddress> Addresses { get; init; } = [];
    /// <summary>Enhanced status of a route that bounces or defers.</summary>
    public string? Status { get; init; }
    /// <summary>Why the host has no address, or why the domain cannot be routed, or a note.</summary>
    public string? Reason { get; init; }
    /// <summary>The TLS policy that applies to the host: "Opportunistic", "DANE", "MTA-STS enforce", a TlsPolicies level or the transport's Tls.</summary>
    public string? Tls { get; init; }

    /// <summary>The name of the TLS requirement that applies to <paramref name="host"/> of <paramref name="route"/>.</summary>
    public static string TlsOf(MailRoute route, RouteHost host) => host.Tls?.Policy ?? route.Transport?.Tls.ToString() ?? nameof(Config.TransportTls.Opportunistic);

    /// <summary>The rows of <paramref name="route"/>: one per host, or one with the reason when there is none.</summary>
    public static IReadOnlyList<MailExchanger> From(MailRoute route)
    {
        if (route.Hosts.Count == 0)
            return [new MailExchanger { Domain = route.Domain, Kind = route.Kind, Source = route.Source, Status = route.Status, Reason = route.Reason }];
        return route.Hosts.Select((h, i) => new MailExchanger
        {
            Domain = route.Domain,
            Kind = route.Kind,
            Source = route.Source,
            Order = i + 1,
            Preference = h.Preference,
            Host = h.Name,
            Port = h.Port,
            Addresses = h.Addresses,
            Status = route.Status,
            Reason = h.Error ?? route.Reason,
            Tls = TlsOf(route, h),
        }).ToList();
    }

    public override string ToString() => Host is null ? $"{Domain}: {Kind} {Status} {Reason}" : $"{Domain}: {Order}. {Host}:{Port} (preference {Preference})";
}
