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

    internal static MailRoute Fail(string domain, string status, string reason) => new()
    {
        Domain = domain,
        Kind = status[0] == '5' ? RouteKind.Bounce : RouteKind.Defer,
        Status = status,
        Reason = reason,
    };
}
