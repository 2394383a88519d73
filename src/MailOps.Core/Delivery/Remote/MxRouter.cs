using MailOps.Core.Dns;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;
using MailOps.Core.Config;

namespace MailOps.Core.Delivery.Remote;

/// <summary>
/// Where a domain's mail goes (docs/delivery.md): Routes, then SmartHost, else the MX
/// records sorted by preference with equal preferences shuffled (RFC 5321 §5.1), else the implicit
/// MX (the domain's own A/AAAA) only when there is no MX at all. A null MX (RFC 7505) bounces
/// 5.1.10, NXDOMAIN bounces 5.1.2, SERVFAIL and timeouts defer 4.4.3. MX hosts at or above our
/// own preference are dropped so that mail never loops back to us; when we are the best MX of a
/// domain we do not serve, the mail bounces 5.4.6 (qmail-remote's "I'm listed as a best-preference MX").
/// Each MX host then gets its TLS requirement (docs/configuration.md, "TLS policy"): a TlsPolicies
/// entry for the domain, else DANE where the MX and TLSA answers are DNSSEC-validated (RFC 7672),
/// else the domain's MTA-STS policy (RFC 8461: in enforce mode hosts outside its mx list are
/// dropped), else opportunistic TLS.
/// </summary>
public sealed class MxRouter : IDisposable
{
    private readonly MailOpsConfig _config;
    private readonly ILookupClient _dns;
    private readonly Func<IReadOnlyList<IPEndPoint>> _ownEndpoints;
    private readonly HashSet<string> _local;
    private readonly MtaStsResolver _sts;

    /// <param name="config">Routes, SmartHost, RemotePort, HostName, Local/VirtualDomains.</param>
    /// <param name="dns">The resolver (<see cref="Dns.DnsEndpoint.CreateClient"/>).</param>
    /// <param name="ownEndpoints">Where this server listens, to recognise itself among MX hosts.</param>
    /// <param name="mtaStsCache">Where fetched MTA-STS policies are kept across restarts (the queue's control/mta-sts); null keeps them in memory only.</param>
    public MxRouter(MailOpsConfig config, ILookupClient dns, Func<IReadOnlyList<IPEndPoint>>? ownEndpoints = null, string? mtaStsCache = null)
    {
        _config = config;
        _dns = dns;
        _ownEndpoints = ownEndpoints ?? (() => ConfiguredEndpoints(config));
        _local = new(config.LocalDomains.Concat(config.VirtualDomains.Keys), StringComparer.OrdinalIgnoreCase);
        Trust = CertificateTrust.FromConfig(config);
        _sts = new MtaStsResolver(dns, Trust, mtaStsCache);
    }

    /// <summary>How certificates are verified: the system's roots and TlsTrustAnchors.</summary>
    public CertificateTrust Trust { get; }

    /// <summary>A router that asks the configuration's DnsServers (or the system resolvers).</summary>
    public static MxRouter ForConfig(MailOpsConfig config) => new(config, Dns.DnsEndpoint.CreateClient(config.DnsServers));

    /// <summary>The destination key deliveries are grouped by: the route target when one applies, else the domain.</summary>
    public string DestinationOf(string domain)
    {
        if (_local.Contains(domain)) return "local";
        if (_config.Routes.TryGetValue(domain, out var route)) return "route:" + route;
        if (_config.SmartHost is { } smart) return "smarthost:" + smart;
        return domain.ToLowerInvariant();
    }

    /// <summary>The most connections a destination of <see cref="DestinationOf"/> may have: its transport's MaxConnections, else null.</summary>
    public int? MaxConnectionsOf(string destination)
    {
        if (destination.StartsWith("smarthost:", StringComparison.Ordinal)) return _config.SmartHost?.MaxConnections;
        if (!destination.StartsWith("route:", StringComparison.Ordinal)) return null;
        return _config.Routes.Values.Where(t => "route:" + t == destination).Select(t => t.MaxConnections).FirstOrDefault();
    }

    public async Task<MailRoute> RouteAsync(string domain, CancellationToken cancellationToken = default)
    {
        domain = domain.Trim().TrimEnd('.').ToLowerInvariant();
        if (_local.Contains(domain)) return new MailRoute { Domain = domain, Kind = RouteKind.Local, Source = "local" };
        if (_config.Routes.TryGetValue(domain, out var route)) return await RouteToAsync(domain, route, "route", cancellationToken).ConfigureAwait(false);
        if (_config.SmartHost is { } smart) return await RouteToAsync(domain, smart, "smarthost", cancellationToken).ConfigureAwait(false);
        if (domain.StartsWith('[') && domain.EndsWith(']'))
            return await RouteToAsync(domain, domain, "address-literal", cancellationToken).ConfigureAwait(false);

        var (mxAnswer, mxError) = await QueryAsync(domain, QueryType.MX, cancellationToken).ConfigureAwait(false);
        if (mxError is not null) return mxError;
        var mx = mxAnswer!.Answers.MxRecords().ToList();

        List<RouteHost> hosts;
        string source;
        if (mx.Count == 0)
        {
            // RFC 5321 §5.1: no MX at all, so the domain itself is the implicit MX.
            var implicitHost = await ResolveHostAsync(domain, 0, _config.RemotePort, cancellationToken).ConfigureAwait(false);
            if (implicitHost.Addresses.Count == 0)
                return MailRoute.Fail(domain, implicitHost.ErrorIsTemporary ? "4.4.3" : "5.1.2",
                    $"{domain} has no MX and no address records ({implicitHost.Error})");
            hosts = [implicitHost];
            source = "implicit-mx";
        }
        else
        {
            var exchanges = mx.Select(r => (Name: r.Exchange.Value.TrimEnd('.'), Preference: (int)r.Preference)).ToList();
            // RFC 7505: "0 ." alone means the domain accepts no mail.
            if (exchanges.All(x => x.Name.Length == 0))
                return MailRoute.Fail(domain, "5.1.10", $"{domain} publishes a null MX: it accepts no mail (RFC 7505)");
            exchanges.RemoveAll(x => x.Name.Length == 0);
            var ordered = exchanges
                .GroupBy(x => x.Preference)
                .OrderBy(g => g.Key)
                .SelectMany(g => g.OrderBy(_ => Random.Shared.Next()));
            hosts = new List<RouteHost>();
            foreach (var (name, preference) in ordered)
                hosts.Add(await ResolveHostAsync(name, preference, _config.RemotePort, cancellationToken).ConfigureAwait(false));
            source = "mx";
        }

        // Never deliver to ourselves: drop every host at or above the best preference that is us.
        var self = hosts.Where(IsSelf).Select(h => (int?)h.Preference).Min();
        string? reason = null;
        if (self is { } ownPreference)
        {
            int before = hosts.Count;
            hosts = hosts.Where(h => h.Preference < ownPreference).ToList();
            if (hosts.Count == 0)
                return MailRoute.Fail(domain, "5.4.6", $"mail for {domain} loops back to myself: this server is its best MX but {domain} is not a local domain");
            reason = $"{before - hosts.Count} MX host(s) at or above this server's own preference {ownPreference} dropped";
        }

        if (hosts.All(h => h.Addresses.Count == 0))
        {
            return MailRoute.Fail(domain, hosts.Any(h => h.ErrorIsTemporary) ? "4.4.3" : "5.4.4",
                $"no MX host of {domain} has an address: " + string.Join("; ", hosts.Select(h => h.Error)));
        }
        bool secure = source == "mx" && mxAnswer.Header.IsAuthenticData;
        return await WithTlsPolicyAsync(new MailRoute { Domain = domain, Kind = RouteKind.Remote, Source = source, Hosts = hosts, Reason = reason }, secure, cancellationToken).ConfigureAwait(false);
    }

    private static readonly TlsRequirement StsEnforce = new(TransportTls.Required, "MTA-STS enforce");
    private static readonly TlsRequirement StsTesting = new(TransportTls.Opportunistic, "MTA-STS testing") { ReportOnly = true };

    /// <summary>Gives each host of an MX route its TLS requirement: TlsPolicies, else DANE, else MTA-STS, else none (opportunistic).</summary>
    private async Task<MailRoute> WithTlsPolicyAsync(MailRoute route, bool mxSecure, CancellationToken cancellationToken)
    {
        string domain = route.Domain;
        var level = _config.TlsPolicies.TryGetValue(domain, out var policy) ? MailOpsConfig.TlsPolicyLevel(policy) : null;
        if (level is { } fixedLevel && fixedLevel != TransportTls.Dane)
        {
            var requirement = new TlsRequirement(fixedLevel, fixedLevel.ToString());
            return With(route, route.Hosts.Select(h => h with { Tls = requirement }).ToList(), route.Reason);
        }
        var notes = new List<string>();
        if (route.Reason is not null) notes.Add(route.Reason);
        MtaStsPolicy? sts = null;
        if (level is null)
        {
            (sts, var note) = await _sts.GetAsync(domain, DateTimeOffset.UtcNow, cancellationToken).ConfigureAwait(false);
            if (note is not null) notes.Add(note);
        }
        var hosts = new List<RouteHost>();
        bool tlsFailure = false;
        foreach (var host in route.Hosts)
        {
            if (host.Addresses.Count == 0) { hosts.Add(host); continue; }
            var (tlsa, error) = mxSecure || level == TransportTls.Dane ? await TlsaAsync(host, cancellationToken).ConfigureAwait(false) : (null, null);
            if (error is null && tlsa is null && level == TransportTls.Dane)
                error = $"{host.Name} has no DNSSEC-validated TLSA record, and TlsPolicies says Dane for {domain}";
            if (error is not null)
            {
                tlsFailure = true;
                hosts.Add(host with { Addresses = [], Error = error, ErrorIsTemporary = true });
                continue;
            }
            if (tlsa is not null)
            {
                // RFC 7672 §2.2: DANE applies; with no usable record TLS is still required, unauthenticated.
                var usable = tlsa.Where(CertificateTrust.IsUsable).ToList();
                hosts.Add(host with { Tls = usable.Count > 0 ? new TlsRequirement(TransportTls.Dane, "DANE") { Tlsa = usable } : new TlsRequirement(TransportTls.Encrypted, "DANE, no usable TLSA record") });
                continue;
            }
            if (sts is { IsEnforce: true } && !sts.Allows(host.Name))
            {
                notes.Add($"{host.Name} dropped: not an mx of the MTA-STS policy of {domain}");
                continue;
            }
            hosts.Add(sts is null ? host : host with { Tls = sts.IsEnforce ? StsEnforce : StsTesting });
        }
        if (hosts.Count == 0)
            return MailRoute.Fail(domain, "4.7.5", $"no MX host of {domain} is in its MTA-STS policy ({sts}); the mail waits");
        if (hosts.All(h => h.Addresses.Count == 0))
            return MailRoute.Fail(domain, tlsFailure ? "4.7.5" : "4.4.3", $"no MX host of {domain} can be used: " + string.Join("; ", hosts.Select(h => h.Error)));
        return With(route, hosts, notes.Count > 0 ? string.Join("; ", notes) : null);
    }

    private static MailRoute With(MailRoute route, IReadOnlyList<RouteHost> hosts, string? reason) =>
        new() { Domain = route.Domain, Kind = route.Kind, Source = route.Source, Hosts = hosts, Reason = reason, Transport = route.Transport };

    /// <summary>
    /// The host's TLSA records when the answer is DNSSEC-validated (the resolver's AD bit); null
    /// when there are none or the answer is not validated (no DANE); an error when the lookup
    /// failed, since then DANE can neither be used nor ruled out (RFC 7672 §2.2).
    /// </summary>
    private async Task<(IReadOnlyList<DnsClient.Protocol.TlsaRecord>? Records, string? Error)> TlsaAsync(RouteHost host, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host.Name, out _)) return (null, null);
        string name = $"_{host.Port}._tcp.{host.Name}";
        IDnsQueryResponse response;
        try
        {
            response = await _dns.CountedQueryAsync(name, QueryType.TLSA, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DnsResponseException or SocketException or IOException or TimeoutException)
        {
            return (null, $"the TLSA lookup of {name} failed ({ex.Message}): DANE can be neither used nor ruled out");
        }
        if (response.HasError)
            return response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain
                ? (null, null)
                : (null, $"the TLSA lookup of {name} failed ({response.Header.ResponseCode}): DANE can be neither used nor ruled out");
        var records = response.Answers.OfType<DnsClient.Protocol.TlsaRecord>().ToList();
        return response.Header.IsAuthenticData && records.Count > 0 ? (records, null) : (null, null);
    }

    private async Task<MailRoute> RouteToAsync(string domain, TransportSettings target, string source, CancellationToken cancellationToken)
    {
        if (!target.TryGetEndpoint(_config.RemotePort, out var hp)) // "[host]" and "[host]:port" included
            return MailRoute.Fail(domain, "4.3.5", $"{source} '{target.Host}' is not host[:port] (fix the configuration)");
        var host = await ResolveHostAsync(hp.Host, 0, hp.Port, cancellationToken).ConfigureAwait(false);
        // A broken route is the operator's to fix: defer, never bounce.
        if (host.Addresses.Count == 0)
            return MailRoute.Fail(domain, "4.4.3", $"{source} host {hp.Host} has no address ({host.Error})");
        if (IsSelf(host))
            return MailRoute.Fail(domain, "5.4.6", $"{source} {hp} for {domain} is this server itself (mail loop)");
        if (target.Tls == TransportTls.Dane)
        {
            var (tlsa, error) = await TlsaAsync(host, cancellationToken).ConfigureAwait(false);
            var usable = tlsa?.Where(CertificateTrust.IsUsable).ToList() ?? [];
            if (usable.Count == 0)
                return MailRoute.Fail(domain, "4.7.5", error ?? $"{source} {hp} has no usable DNSSEC-validated TLSA record, and its Tls is Dane");
            host = host with { Tls = new TlsRequirement(TransportTls.Dane, "DANE") { Tlsa = usable } };
        }
        return new MailRoute { Domain = domain, Kind = RouteKind.Remote, Source = source, Hosts = [host], Transport = target };
    }

    /// <summary>A host's A and AAAA addresses (IPv4 first), or why it has none.</summary>
    private async Task<RouteHost> ResolveHostAsync(string name, int preference, int port, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(name, out var literal)) return new RouteHost(name, preference, port, [literal]);
        var addresses = new List<IPAddress>();
        MailRoute? failure = null;
        foreach (var type in new[] { QueryType.A, QueryType.AAAA })
        {
            var (answer, error) = await QueryAsync(name, type, cancellationToken).ConfigureAwait(false);
            if (error is not null) { failure ??= error; continue; }
            addresses.AddRange(answer!.Answers.ARecords().Select(a => a.Address));
            addresses.AddRange(answer.Answers.AaaaRecords().Select(a => a.Address));
        }
        if (addresses.Count > 0) return new RouteHost(name, preference, port, addresses.Distinct().ToList());
        return new RouteHost(name, preference, port, [])
        {
            Error = failure?.Reason ?? $"{name} has no A or AAAA record",
            ErrorIsTemporary = failure?.Kind == RouteKind.Defer,
        };
    }

    /// <summary>One query; a failure comes back as a bounce (NXDOMAIN) or a deferral (anything else).</summary>
    private async Task<(IDnsQueryResponse? Answer, MailRoute? Failure)> QueryAsync(string name, QueryType type, CancellationToken cancellationToken)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _dns.CountedQueryAsync(name, type, cancellationToken).ConfigureAwait(false);
        }
        catch (DnsResponseException ex)
        {
            return (null, MailRoute.Fail(name, "4.4.3", $"DNS {type} lookup of {name} failed: {ex.Message}"));
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException)
        {
            return (null, MailRoute.Fail(name, "4.4.3", $"DNS {type} lookup of {name} failed: {ex.Message}"));
        }
        if (!response.HasError) return (response, null);
        var code = response.Header.ResponseCode;
        if (code == DnsHeaderResponseCode.NotExistentDomain)
            return (null, MailRoute.Fail(name, "5.1.2", $"{name} does not exist (NXDOMAIN)"));
        return (null, MailRoute.Fail(name, "4.4.3", $"DNS {type} lookup of {name} failed: {response.ErrorMessage} ({code})"));
    }

    private bool IsSelf(RouteHost host)
    {
        if (host.Name.Equals(_config.HostName, StringComparison.OrdinalIgnoreCase)) return true;
        var own = _ownEndpoints();
        foreach (var address in host.Addresses)
        foreach (var endpoint in own)
        {
            if (endpoint.Port != host.Port) continue;
            if (endpoint.Address.Equals(address)) return true;
            if ((endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any)) && IsLocalAddress(address)) return true;
        }
        return false;
    }

    private static bool IsLocalAddress(IPAddress address)
    {
        if (IPAddress.IsLoopback(address)) return true;
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .SelectMany(n => n.GetIPProperties().UnicastAddresses)
                .Any(u => u.Address.Equals(address));
        }
        catch (NetworkInformationException)
        {
            return false;
        }
    }

    private static IReadOnlyList<IPEndPoint> ConfiguredEndpoints(MailOpsConfig config) =>
        config.Listen.Select(Smtp.ListenEndpoint.TryParseEndpoint).OfType<IPEndPoint>().ToList();

    public void Dispose() => _sts.Dispose();
}
