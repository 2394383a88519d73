using System.Net;
using System.Net.Sockets;
using DnsClient;
using MailOps.Core.Config;
using MailOps.Core.Dns;
using MimeKit;
using MimeKit.Cryptography;

namespace MailOps.Core.Smtp;

/// <summary>What DMARC asks of a message that failed it.</summary>
public enum DmarcDisposition { None, Quarantine, Reject }

/// <summary>The verdicts on one message, and the Authentication-Results value (RFC 8601) that states them.</summary>
public sealed record InboundVerdict(string Spf, string Dkim, string Dmarc, string Arc, DmarcDisposition Disposition, string? FromDomain, string HeaderValue);

/// <summary>
/// Checks mail arriving from the Internet for our domains (docs/smtp.md, "Inbound
/// authentication"): SPF for the MAIL FROM domain (or the HELO name for bounces), every
/// DKIM-Signature with MimeKit's verifier, DMARC (RFC 7489: alignment, p, sp, pct) for the From:
/// domain, ARC with MimeKit's verifier. A DNS failure gives a temporary result, never a reject.
/// </summary>
internal sealed class InboundAuthentication(ILookupClient dns, string authservId)
{
    private const int MaxSignatures = 5;
    private readonly SpfEvaluator _spf = new(dns);
    private readonly KeyLocator _keys = new(dns);

    public async Task<InboundVerdict> EvaluateAsync(IPAddress client, string helo, string mailFrom, MimeMessage message, CancellationToken cancellationToken)
    {
        // SPF (RFC 7208 §2.4): the MAIL FROM domain, or the HELO name for the null sender.
        string spfDomain = mailFrom.Length > 0 ? mailFrom[(mailFrom.LastIndexOf('@') + 1)..] : helo;
        var (spf, _) = await _spf.CheckHostAsync(client, spfDomain, mailFrom, helo, cancellationToken).ConfigureAwait(false);
        string spfText = spf.ToString().ToLowerInvariant();

        // DKIM: every signature, up to a few, each with its d= and s=.
        var dkim = new List<(string Result, string Domain, string Selector)>();
        var verifier = new DkimVerifier(_keys);
        foreach (var header in message.Headers.Where(h => h.Id == HeaderId.DkimSignature).Take(MaxSignatures))
        {
            var tags = Tags(header.Value);
            string d = tags.GetValueOrDefault("d", "").ToLowerInvariant(), s = tags.GetValueOrDefault("s", "");
            string result;
            try
            {
                result = await verifier.VerifyAsync(message, header, cancellationToken).ConfigureAwait(false) ? "pass" : "fail";
            }
            catch (KeyLookupException ex)
            {
                result = ex.Temporary ? "temperror" : "permerror";
            }
            catch (FormatException)
            {
                result = "permerror";
            }
            dkim.Add((result, d, s));
        }

        // DMARC for the one From: domain.
        string? fromDomain = message.From.Mailboxes.Count() == 1 ? message.From.Mailboxes.First().Domain?.ToLowerInvariant() : null;
        var (dmarc, disposition, policy) = fromDomain is null ? ("none", DmarcDisposition.None, null) : await DmarcAsync(fromDomain, spf, spfDomain, dkim, cancellationToken).ConfigureAwait(false);

        string arc;
        try
        {
            var chain = (await new ArcVerifier(_keys).VerifyAsync(message, cancellationToken).ConfigureAwait(false)).Chain;
            arc = chain.ToString().ToLowerInvariant();
        }
        catch (KeyLookupException)
        {
            arc = "temperror";
        }

        var parts = new List<string> { authservId, $"spf={spfText} smtp.{(mailFrom.Length > 0 ? "mailfrom=" + mailFrom : "helo=" + helo)}" };
        parts.AddRange(dkim.Count == 0 ? ["dkim=none"] : dkim.Select(r => $"dkim={r.Result} header.d={r.Domain} header.s={r.Selector}"));
        parts.Add(fromDomain is null ? "dmarc=none" : $"dmarc={dmarc}{(policy is null ? "" : $" (p={policy})")} header.from={fromDomain}");
        parts.Add($"arc={arc}");
        string dkimSummary = dkim.Count == 0 ? "none" : string.Join(",", dkim.Select(r => r.Result));
        return new InboundVerdict(spfText, dkimSummary, dmarc, arc, disposition, fromDomain, string.Join(";\r\n\t", parts));
    }

    private async Task<(string Result, DmarcDisposition Disposition, string? Policy)> DmarcAsync(string fromDomain, SpfResult spf, string spfDomain,
        List<(string Result, string Domain, string Selector)> dkim, CancellationToken cancellationToken)
    {
        string organization = OrganizationalDomain(fromDomain);
        var (record, temporary) = await DmarcRecordAsync(fromDomain, cancellationToken).ConfigureAwait(false);
        bool fromOrganization = false;
        if (record is null && !temporary && organization != fromDomain)
        {
            (record, temporary) = await DmarcRecordAsync(organization, cancellationToken).ConfigureAwait(false);
            fromOrganization = true;
        }
        if (temporary) return ("temperror", DmarcDisposition.None, null);
        if (record is null) return ("none", DmarcDisposition.None, null);
        var tags = Tags(record);
        string p = tags.GetValueOrDefault("p", "").ToLowerInvariant();
        if (p is not ("none" or "quarantine" or "reject")) return ("permerror", DmarcDisposition.None, null);
        string policy = fromOrganization && tags.TryGetValue("sp", out var sp) && sp.ToLowerInvariant() is "none" or "quarantine" or "reject" ? sp.ToLowerInvariant() : p;
        bool strictDkim = tags.GetValueOrDefault("adkim", "r").Equals("s", StringComparison.OrdinalIgnoreCase);
        bool strictSpf = tags.GetValueOrDefault("aspf", "r").Equals("s", StringComparison.OrdinalIgnoreCase);
        bool Aligned(string domain, bool strict) => strict ? domain.Equals(fromDomain, StringComparison.OrdinalIgnoreCase) : OrganizationalDomain(domain) == organization;
        bool pass = (spf == SpfResult.Pass && Aligned(spfDomain.ToLowerInvariant(), strictSpf)) || dkim.Any(r => r.Result == "pass" && Aligned(r.Domain, strictDkim));
        if (pass) return ("pass", DmarcDisposition.None, policy);
        int pct = int.TryParse(tags.GetValueOrDefault("pct", "100"), out var n) ? Math.Clamp(n, 0, 100) : 100;
        // pct: the policy applies to that share of failing mail; the rest is treated one step milder (RFC 7489 §6.6.4).
        bool applies = pct >= 100 || Random.Shared.Next(100) < pct;
        var disposition = policy switch
        {
            "reject" => applies ? DmarcDisposition.Reject : DmarcDisposition.Quarantine,
            "quarantine" => applies ? DmarcDisposition.Quarantine : DmarcDisposition.None,
            _ => DmarcDisposition.None,
        };
        return ("fail", disposition, policy);
    }

    /// <summary>The one v=DMARC1 record of <c>_dmarc.domain</c>, or null; temporary when the lookup failed.</summary>
    private async Task<(string? Record, bool Temporary)> DmarcRecordAsync(string domain, CancellationToken cancellationToken)
    {
        try
        {
            var response = await dns.CountedQueryAsync("_dmarc." + domain, QueryType.TXT, cancellationToken).ConfigureAwait(false);
            if (response.HasError && response.Header.ResponseCode != DnsHeaderResponseCode.NotExistentDomain) return (null, true);
            var records = response.Answers.TxtRecords().Select(t => string.Concat(t.Text)).Where(t => t.StartsWith("v=DMARC1", StringComparison.OrdinalIgnoreCase)).ToList();
            return (records.Count == 1 ? records[0] : null, false);
        }
        catch (Exception ex) when (ex is DnsResponseException or SocketException or IOException or TimeoutException)
        {
            return (null, true);
        }
    }

    /// <summary>
    /// The organizational domain, approximated without the public suffix list: the last two
    /// labels, or three when the second-level label is a common registry label under a two-letter
    /// country code (example.co.uk, example.com.au).
    /// </summary>
    internal static string OrganizationalDomain(string domain)
    {
        var labels = domain.Trim('.').ToLowerInvariant().Split('.');
        if (labels.Length <= 2) return string.Join('.', labels);
        bool registry = labels[^1].Length == 2 && labels[^2] is "co" or "com" or "net" or "org" or "gov" or "ac" or "edu" or "ne" or "or" or "go";
        return string.Join('.', labels[^(registry ? 3 : 2)..]);
    }

    private static Dictionary<string, string> Tags(string value)
    {
        var tags = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var part in value.Split(';'))
        {
            int eq = part.IndexOf('=');
            if (eq > 0) tags.TryAdd(part[..eq].Trim(), string.Concat(part[(eq + 1)..].Where(c => !char.IsWhiteSpace(c))));
        }
        return tags;
    }

    private sealed class KeyLookupException(bool temporary, string message) : Exception(message)
    {
        public bool Temporary { get; } = temporary;
    }

    /// <summary>DKIM and ARC public keys from <c>selector._domainkey.domain</c> TXT records, through our resolver.</summary>
    private sealed class KeyLocator(ILookupClient dns) : DkimPublicKeyLocatorBase
    {
        public override Org.BouncyCastle.Crypto.AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

        public override async Task<Org.BouncyCastle.Crypto.AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
        {
            IDnsQueryResponse response;
            try
            {
                response = await dns.CountedQueryAsync($"{selector}._domainkey.{domain}", QueryType.TXT, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is DnsResponseException or SocketException or IOException or TimeoutException)
            {
                throw new KeyLookupException(true, ex.Message);
            }
            if (response.HasError && response.Header.ResponseCode != DnsHeaderResponseCode.NotExistentDomain) throw new KeyLookupException(true, response.ErrorMessage);
            var record = response.Answers.TxtRecords().Select(t => string.Concat(t.Text)).FirstOrDefault(t => t.Contains("p=", StringComparison.Ordinal));
            if (record is null) throw new KeyLookupException(false, $"no key at {selector}._domainkey.{domain}");
            try { return GetPublicKey(record); }
            catch (Exception ex) when (ex is FormatException or ParseException or ArgumentException) { throw new KeyLookupException(false, ex.Message); }
        }
    }
}
