using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;
using MailOps.Core.Config;
using MailOps.Core.Delivery.Remote;
using MailOps.Core.Dkim;

namespace MailOps.Core.Dns;

/// <summary>The verdict of one check of <see cref="MailDomainChecker"/>.</summary>
public enum CheckStatus
{
    Pass,
    /// <summary>Mail goes, but some receivers will trust it less, or a protection is missing.</summary>
    Warn,
    /// <summary>Receivers such as Gmail, Yahoo and Outlook will refuse or junk the mail.</summary>
    Fail,
}

/// <summary>One thing a sending domain must publish, as found in DNS (Test-MailDomain, <c>mailops domain check</c>).</summary>
public sealed class MailDomainCheck
{
    public required string Domain { get; init; }
    /// <summary>MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, HELO or PTR.</summary>
    public required string Check { get; init; }
    public required CheckStatus Status { get; init; }
    /// <summary>What DNS holds (the record, or "none").</summary>
    public required string Found { get; init; }
    /// <summary>What the verdict means and what to do.</summary>
    public required string Detail { get; init; }
    /// <summary>The record to publish (zone-file syntax), when one would fix or complete the check.</summary>
    public string? Record { get; init; }

    public override string ToString() => $"{Check} {Status}: {Detail}";
}

/// <summary>
/// What a sending domain must publish for its mail to be accepted, checked against DNS the way
/// large receivers check it: MX, SPF (evaluated for this server's addresses by <see cref="SpfEvaluator"/>,
/// with the lookup limits of RFC 7208), each local DKIM key against its published TXT
/// record, DMARC, MTA-STS (record and policy), TLS-RPT, forward-confirmed HELO and PTR.
/// </summary>
public sealed class MailDomainChecker
{
    private readonly MailOpsConfig _config;
    private readonly ILookupClient _dns;
    private readonly DkimKeys? _keys;

    /// <param name="queuePath">Whose DKIM keys are compared with DNS; null skips that comparison.</param>
    public MailDomainChecker(MailOpsConfig config, string? queuePath)
    {
        _config = config;
        _dns = DnsEndpoint.CreateClient(config.DnsServers);
        _keys = queuePath is null ? null : new DkimKeys(queuePath);
    }

    /// <summary>Every check of <paramref name="domain"/>, for mail sent from <paramref name="addresses"/> (default: HostName's addresses).</summary>
    public async Task<IReadOnlyList<MailDomainCheck>> CheckAsync(string domain, IReadOnlyList<IPAddress>? addresses = null, CancellationToken cancellationToken = default)
    {
        domain = domain.Trim().TrimEnd('.').ToLowerInvariant();
        string host = _config.HostName.TrimEnd('.').ToLowerInvariant();
        var helo = await AddressesAsync(host, cancellationToken).ConfigureAwait(false);
        addresses = addresses is { Count: > 0 } ? addresses : helo.Addresses;
        var checks = new List<MailDomainCheck>();
        MailDomainCheck Add(string check, CheckStatus status, string found, string detail, string? record = null)
        {
            var c = new MailDomainCheck { Domain = domain, Check = check, Status = status, Found = found, Detail = detail, Record = record };
            checks.Add(c);
            return c;
        }

        // MX: where replies, bounces and reports to the domain go.
        var mx = await QueryAsync(domain, QueryType.MX, cancellationToken).ConfigureAwait(false);
        var exchanges = mx.Answer?.Answers.MxRecords().OrderBy(r => r.Preference).ToList() ?? [];
        if (mx.Error is not null)
            Add("MX", mx.NxDomain ? CheckStatus.Fail : CheckStatus.Warn, "none", mx.NxDomain ? $"{domain} does not exist in DNS: nobody accepts mail from a domain that does not" : mx.Error, $"{domain}. IN MX 10 {host}.");
        else if (exchanges.Count == 0)
            Add("MX", CheckStatus.Warn, "none", "no MX record: mail to the domain goes to its address record, if any; publish an MX so replies and bounces arrive", $"{domain}. IN MX 10 {host}.");
        else if (exchanges.All(r => r.Exchange.Value.TrimEnd('.').Length == 0))
            Add("MX", CheckStatus.Warn, "0 .", "a null MX (RFC 7505): the domain receives no mail, so replies, bounces and DMARC reports to it are lost", $"{domain}. IN MX 10 {host}.");
        else
            Add("MX", CheckStatus.Pass, string.Join(", ", exchanges.Select(r => $"{r.Preference} {r.Exchange.Value.TrimEnd('.')}")), "the domain receives mail");

        await CheckSpfAsync(domain, host, addresses, Add, cancellationToken).ConfigureAwait(false);
        await CheckDkimAsync(domain, Add, cancellationToken).ConfigureAwait(false);

        // DMARC (RFC 7489): Gmail and Yahoo want one from bulk senders; p=none only reports.
        var dmarc = await TxtAsync("_dmarc." + domain, "v=DMARC1", cancellationToken).ConfigureAwait(false);
        string dmarcRecord = $"_dmarc.{domain}. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}\"";
        if (dmarc.Error is not null) Add("DMARC", CheckStatus.Warn, "unknown", dmarc.Error);
        else if (dmarc.Records.Count == 0) Add("DMARC", CheckStatus.Fail, "none", "no DMARC record: Gmail and Yahoo require one from bulk senders, and spoofed mail in the domain's name is not refused", dmarcRecord);
        else if (dmarc.Records.Count > 1) Add("DMARC", CheckStatus.Fail, string.Join(" | ", dmarc.Records), "more than one DMARC record, which receivers treat as none", dmarcRecord);
        else
        {
            string policy = Tag(dmarc.Records[0], "p")?.ToLowerInvariant() ?? "";
            if (policy is "quarantine" or "reject") Add("DMARC", CheckStatus.Pass, dmarc.Records[0], $"policy {policy}: mail that fails SPF and DKIM alignment is {(policy == "reject" ? "refused" : "junked")}");
            else if (policy == "none") Add("DMARC", CheckStatus.Warn, dmarc.Records[0], "policy none: accepted by Gmail and Yahoo, but spoofed mail is only reported, not refused; move to quarantine once reports are clean", dmarcRecord);
            else Add("DMARC", CheckStatus.Fail, dmarc.Records[0], "the record has no valid p= tag", dmarcRecord);
        }

        await CheckMtaStsAsync(domain, exchanges.Select(r => r.Exchange.Value.TrimEnd('.')).Where(n => n.Length > 0).ToList(), Add, cancellationToken).ConfigureAwait(false);

        var tlsrpt = await TxtAsync("_smtp._tls." + domain, "v=TLSRPTv1", cancellationToken).ConfigureAwait(false);
        if (tlsrpt.Records.Count == 1) Add("TLS-RPT", CheckStatus.Pass, tlsrpt.Records[0], "senders report TLS failures to the domain (RFC 8460)");
        else Add("TLS-RPT", CheckStatus.Warn, tlsrpt.Error is null ? tlsrpt.Records.Count == 0 ? "none" : string.Join(" | ", tlsrpt.Records) : "unknown",
            tlsrpt.Error ?? "no single TLS-RPT record: nobody tells the domain when TLS to its MX fails", $"_smtp._tls.{domain}. IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}\"");

        // HELO: the name this server gives must resolve to the addresses it sends from.
        if (helo.Addresses.Count == 0)
            Add("HELO", CheckStatus.Fail, "none", $"HostName {host} has no address record ({helo.Error}); receivers distrust a HELO name that does not resolve", addresses.Count > 0 ? $"{host}. IN {(addresses[0].AddressFamily == AddressFamily.InterNetworkV6 ? "AAAA" : "A")} {addresses[0]}" : null);
        else if (addresses.Except(helo.Addresses).ToList() is { Count: > 0 } missing)
            Add("HELO", CheckStatus.Fail, string.Join(", ", helo.Addresses), $"HostName {host} does not resolve to {string.Join(", ", missing)}, which mail is sent from", $"{host}. IN {(missing[0].AddressFamily == AddressFamily.InterNetworkV6 ? "AAAA" : "A")} {missing[0]}");
        else
            Add("HELO", CheckStatus.Pass, string.Join(", ", helo.Addresses), $"HostName {host} resolves to the sending addresses");

        foreach (var address in addresses) await CheckPtrAsync(address, host, Add, cancellationToken).ConfigureAwait(false);
        return checks;
    }

    private async Task CheckSpfAsync(string domain, string host, IReadOnlyList<IPAddress> addresses, Func<string, CheckStatus, string, string, string?, MailDomainCheck> add, CancellationToken cancellationToken)
    {
        string mechanisms = addresses.Count > 0 ? string.Join(" ", addresses.Select(a => (a.AddressFamily == AddressFamily.InterNetworkV6 ? "ip6:" : "ip4:") + a)) : $"a:{host}";
        string suggested = $"{domain}. IN TXT \"v=spf1 {mechanisms} -all\"";
        var spf = await TxtAsync(domain, "v=spf1", cancellationToken).ConfigureAwait(false);
        if (spf.Error is not null) { add("SPF", CheckStatus.Warn, "unknown", spf.Error, null); return; }
        if (spf.Records.Count == 0) { add("SPF", CheckStatus.Fail, "none", "no SPF record: Gmail and Yahoo want SPF or DKIM from every sender, and SPF for DMARC alignment", suggested); return; }
        if (spf.Records.Count > 1) { add("SPF", CheckStatus.Fail, string.Join(" | ", spf.Records), "more than one SPF record is a permanent error (RFC 7208 §4.5)", suggested); return; }
        if (addresses.Count == 0) { add("SPF", CheckStatus.Warn, spf.Records[0], "no sending address to check it against (HostName does not resolve; give the addresses)", null); return; }

        var validator = new SpfEvaluator(_dns);
        var verdicts = new List<string>();
        var worst = CheckStatus.Pass;
        foreach (var address in addresses)
        {
            var (result, _) = await validator.CheckHostAsync(address, domain, "postmaster@" + domain, host, cancellationToken).ConfigureAwait(false);
            verdicts.Add($"{address}: {result.ToString().ToLowerInvariant()}");
            var status = result switch
            {
                SpfResult.Pass => CheckStatus.Pass,
                SpfResult.TempError => CheckStatus.Warn,
                _ => CheckStatus.Fail,
            };
            if (status > worst) worst = status;
        }
        string detail = worst switch
        {
            CheckStatus.Pass => "SPF authorises every sending address",
            CheckStatus.Warn => "SPF could not be evaluated now (a DNS error): " + string.Join("; ", verdicts),
            _ => "SPF does not authorise every sending address (" + string.Join("; ", verdicts) + "); add them to the record",
        };
        add("SPF", worst, spf.Records[0], detail, worst == CheckStatus.Fail ? AddTo(spf.Records[0], domain, addresses) : null);
    }

    /// <summary>The domain's record with the missing addresses added before its "all".</summary>
    private static string AddTo(string record, string domain, IReadOnlyList<IPAddress> addresses)
    {
        var terms = record.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        int all = terms.FindIndex(t => t.TrimStart('+', '-', '~', '?').Equals("all", StringComparison.OrdinalIgnoreCase) || t.StartsWith("redirect=", StringComparison.OrdinalIgnoreCase));
        var added = addresses.Select(a => (a.AddressFamily == AddressFamily.InterNetworkV6 ? "ip6:" : "ip4:") + a).Where(t => !terms.Contains(t, StringComparer.OrdinalIgnoreCase));
        terms.InsertRange(all < 0 ? terms.Count : all, added);
        return $"{domain}. IN TXT \"{string.Join(' ', terms)}\"";
    }

    private async Task CheckDkimAsync(string domain, Func<string, CheckStatus, string, string, string?, MailDomainCheck> add, CancellationToken cancellationToken)
    {
        var keys = _keys?.List(domain) ?? [];
        if (keys.Count == 0)
        {
            add("DKIM", CheckStatus.Warn, "no local key", $"mail from {domain} is not signed here: make a key (New-MailDkimKey -Domain {domain} -Selector s1, or mailops dkim keygen) and publish its record", null);
            return;
        }
        foreach (var key in keys)
        {
            string record = $"{key.RecordName}. IN TXT \"{key.TxtRecord}\"";
            var published = await TxtAsync(key.RecordName, "", cancellationToken).ConfigureAwait(false);
            var found = published.Records.Where(r => Tag(r, "p") is not null).ToList();
            if (published.Error is not null) add("DKIM", CheckStatus.Warn, "unknown", $"selector {key.Selector}: {published.Error}", record);
            else if (found.Count == 0) add("DKIM", CheckStatus.Fail, "none", $"selector {key.Selector}: the key is not published, so signatures made with it fail", record);
            else if (found.Any(r => Tag(r, "p") == Tag(key.TxtRecord, "p")))
                add("DKIM", CheckStatus.Pass, $"{key.RecordName}: {Abbreviate(found[0])}", $"selector {key.Selector} ({key.Algorithm}): the published key is the local one", null);
            else add("DKIM", CheckStatus.Fail, $"{key.RecordName}: {Abbreviate(found[0])}", $"selector {key.Selector}: the published key is not the local one, so signatures made here fail", record);
        }
    }

    private async Task CheckMtaStsAsync(string domain, IReadOnlyList<string> mxHosts, Func<string, CheckStatus, string, string, string?, MailDomainCheck> add, CancellationToken cancellationToken)
    {
        string policyHint = $"_mta-sts.{domain}. IN TXT \"v=STSv1; id={DateTime.UtcNow:yyyyMMdd}01\" and, at https://mta-sts.{domain}/.well-known/mta-sts.txt: version: STSv1 / mode: testing / {string.Join(" / ", mxHosts.Select(h => "mx: " + h))} / max_age: 604800";
        var record = await TxtAsync("_mta-sts." + domain, "v=STSv1", cancellationToken).ConfigureAwait(false);
        if (record.Error is not null) { add("MTA-STS", CheckStatus.Warn, "unknown", record.Error, null); return; }
        if (record.Records.Count == 0) { add("MTA-STS", CheckStatus.Warn, "none", "no MTA-STS: senders cannot know that TLS to the domain's MX must not be stripped (DNSSEC with DANE does the same)", policyHint); return; }
        using var resolver = new MtaStsResolver(_dns, CertificateTrust.FromConfig(_config));
        var (policy, note) = await resolver.GetAsync(domain, DateTimeOffset.UtcNow, cancellationToken).ConfigureAwait(false);
        if (policy is null)
        {
            add("MTA-STS", note is null ? CheckStatus.Warn : CheckStatus.Fail, record.Records[0], note ?? "the policy's mode is none", note is null ? null : policyHint);
            return;
        }
        var uncovered = mxHosts.Where(h => !policy.Allows(h)).ToList();
        if (uncovered.Count > 0)
            add("MTA-STS", policy.IsEnforce ? CheckStatus.Fail : CheckStatus.Warn, policy.ToString(), $"MX host(s) {string.Join(", ", uncovered)} are not in the policy's mx lines{(policy.IsEnforce ? ": senders that enforce it do not deliver there" : "")}", policyHint);
        else if (policy.IsTesting)
            add("MTA-STS", CheckStatus.Warn, policy.ToString(), "mode testing: failures are reported, not prevented; switch to enforce when TLS-RPT reports are clean", null);
        else
            add("MTA-STS", CheckStatus.Pass, policy.ToString(), "mode enforce, and every MX host is in the policy", null);
    }

    private async Task CheckPtrAsync(IPAddress address, string host, Func<string, CheckStatus, string, string, string?, MailDomainCheck> add, CancellationToken cancellationToken)
    {
        string reverse = address.GetArpaName().TrimEnd('.');
        string record = $"{reverse}. IN PTR {host}. (set by whoever owns {address})";
        var answer = await QueryAsync(reverse, QueryType.PTR, cancellationToken).ConfigureAwait(false);
        var names = answer.Answer?.Answers.PtrRecords().Select(p => p.PtrDomainName.Value.TrimEnd('.').ToLowerInvariant()).ToList() ?? [];
        if (names.Count == 0) { add("PTR", CheckStatus.Fail, $"{address}: none", $"{address} has no reverse name: many receivers refuse mail from such addresses", record); return; }
        var confirmed = new List<string>();
        foreach (var name in names)
            if ((await AddressesAsync(name, cancellationToken).ConfigureAwait(false)).Addresses.Contains(address)) confirmed.Add(name);
        string found = $"{address}: {string.Join(", ", names)}";
        if (confirmed.Count == 0) add("PTR", CheckStatus.Fail, found, $"the reverse name of {address} does not resolve back to it (not forward-confirmed)", record);
        else if (!confirmed.Contains(host)) add("PTR", CheckStatus.Warn, found, $"forward-confirmed, but not HostName {host}; receivers compare it with the HELO name", record);
        else add("PTR", CheckStatus.Pass, found, $"forward-confirmed and equal to HostName {host}", null);
    }

    private async Task<(IReadOnlyList<IPAddress> Addresses, string? Error)> AddressesAsync(string name, CancellationToken cancellationToken)
    {
        var addresses = new List<IPAddress>();
        string? error = null;
        foreach (var type in new[] { QueryType.A, QueryType.AAAA })
        {
            var answer = await QueryAsync(name, type, cancellationToken).ConfigureAwait(false);
            error ??= answer.Error;
            addresses.AddRange(answer.Answer?.Answers.ARecords().Select(a => a.Address) ?? []);
            addresses.AddRange(answer.Answer?.Answers.AaaaRecords().Select(a => a.Address) ?? []);
        }
        return (addresses, addresses.Count > 0 ? null : error ?? "no A or AAAA record");
    }

    /// <summary>The TXT records of <paramref name="name"/> that start with <paramref name="prefix"/> (case-insensitive), strings joined.</summary>
    private async Task<(IReadOnlyList<string> Records, string? Error)> TxtAsync(string name, string prefix, CancellationToken cancellationToken)
    {
        var answer = await QueryAsync(name, QueryType.TXT, cancellationToken).ConfigureAwait(false);
        if (answer.Error is not null && !answer.NxDomain) return ([], answer.Error);
        var records = answer.Answer?.Answers.TxtRecords().Select(t => string.Concat(t.Text)).Where(t => t.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)).ToList() ?? [];
        return (records, null);
    }

    private async Task<(IDnsQueryResponse? Answer, string? Error, bool NxDomain)> QueryAsync(string name, QueryType type, CancellationToken cancellationToken)
    {
        try
        {
            var response = await _dns.CountedQueryAsync(name, type, cancellationToken).ConfigureAwait(false);
            if (!response.HasError) return (response, null, false);
            bool nx = response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain;
            return (null, $"the {type} lookup of {name} failed: {response.ErrorMessage}", nx);
        }
        catch (Exception ex) when (ex is DnsResponseException or SocketException or IOException or TimeoutException)
        {
            return (null, $"the {type} lookup of {name} failed: {ex.Message}", false);
        }
    }

    /// <summary>The value of <paramref name="tag"/> in a "k=v; k=v" record, spaces removed.</summary>
    private static string? Tag(string record, string tag)
    {
        foreach (var part in record.Split(';'))
        {
            int eq = part.IndexOf('=');
            if (eq > 0 && part[..eq].Trim().Equals(tag, StringComparison.OrdinalIgnoreCase))
                return string.Concat(part[(eq + 1)..].Where(c => !char.IsWhiteSpace(c)));
        }
        return null;
    }

    private static string Abbreviate(string record) => record.Length <= 60 ? record : record[..57] + "...";
}
