using System.Net;
using System.Net.Sockets;
using MailOps.Core.Config;

namespace MailOps.Core.Smtp;

/// <summary>What a listening port is for (docs/smtp.md, "Listener roles").</summary>
public enum ListenerRole
{
    /// <summary>Port 25: mail from the Internet for our domains, and from RelayClients or AUTH users to anywhere.</summary>
    Mx,
    /// <summary>Port 587 (RFC 6409): STARTTLS before AUTH, AUTH before MAIL.</summary>
    Submission,
    /// <summary>Port 465 (RFC 8314): TLS from the first byte, AUTH before MAIL.</summary>
    Submissions,
}

/// <summary>A Listen entry: <c>IP:PORT</c>, <c>[IPv6]:PORT</c>, with an optional <c>/submission</c> or <c>/submissions</c>.</summary>
public sealed record ListenEndpoint(IPEndPoint Endpoint, ListenerRole Role)
{
    /// <exception cref="ConfigException">Not an endpoint, or an unknown role.</exception>
    public static ListenEndpoint Parse(string text)
    {
        text = text.Trim();
        var role = ListenerRole.Mx;
        int slash = text.LastIndexOf('/');
        if (slash >= 0)
        {
            role = text[(slash + 1)..].ToLowerInvariant() switch
            {
                "mx" or "smtp" => ListenerRole.Mx,
                "submission" => ListenerRole.Submission,
                "submissions" => ListenerRole.Submissions,
                var other => throw new ConfigException($"Listen: '{text}': the role '{other}' is not mx, submission or submissions."),
            };
            text = text[..slash];
        }
        if (IPEndPoint.TryParse(text, out var endpoint) && text.Contains(':'))
        {
            // "::1" alone parses as an IPv6 address with port 0; a port is required.
            if (endpoint.AddressFamily == AddressFamily.InterNetworkV6 && !text.Contains(']')) throw new ConfigException($"Listen: '{text}': write IPv6 endpoints as [address]:port.");
            return new ListenEndpoint(endpoint, role);
        }
        throw new ConfigException($"Listen: '{text}' is not an endpoint (IP:PORT or [IPv6]:PORT, then /submission or /submissions for those roles).");
    }

    /// <summary>The endpoint of a Listen entry, or null when it is not one (no exception).</summary>
    public static IPEndPoint? TryParseEndpoint(string text)
    {
        try { return Parse(text).Endpoint; }
        catch (ConfigException) { return null; }
    }

    public override string ToString() => Role == ListenerRole.Mx ? Endpoint.ToString() : $"{Endpoint}/{Role.ToString().ToLowerInvariant()}";
}
