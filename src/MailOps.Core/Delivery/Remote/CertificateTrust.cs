using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DnsClient.Protocol;
using MailOps.Core.Config;

namespace MailOps.Core.Delivery.Remote;

/// <summary>
/// How a peer's certificate is judged (docs/configuration.md, "TLS policy"): by the Web PKI (the
/// system's roots plus TlsTrustAnchors, the name checked) for Required/Implicit transports, the
/// Verify level and MTA-STS; by DNSSEC-validated TLSA records for DANE (RFC 7672).
/// </summary>
public sealed class CertificateTrust
{
    private readonly X509Certificate2Collection _anchors;

    public CertificateTrust(X509Certificate2Collection? anchors = null) => _anchors = anchors ?? [];

    /// <summary>The system's roots and the configuration's TlsTrustAnchors.</summary>
    public static CertificateTrust FromConfig(MailOpsConfig config)
    {
        var anchors = new X509Certificate2Collection();
        if (config.TlsTrustAnchors is { } file) anchors.ImportFromPemFile(file);
        return new CertificateTrust(anchors);
    }

    /// <summary>
    /// The Web PKI check: the chain ends at a system root or a TlsTrustAnchors certificate, and the
    /// name the connection was made to is in the certificate (<paramref name="errors"/> carries
    /// the platform's verdict on both).
    /// </summary>
    public bool Verify(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) => Why(certificate, chain, errors) is null;

    /// <summary>Null when <see cref="Verify"/> passes, else why not, in words for the trace.</summary>
    public string? Why(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None) return null;
        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0) return "no certificate";
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) return "the certificate is not for this host name";
        if (_anchors.Count == 0) return "the certificate chain does not verify";
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(_anchors);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        foreach (var extra in Presented(chain)) custom.ChainPolicy.ExtraStore.Add(extra);
        return custom.Build(certificate as X509Certificate2 ?? new X509Certificate2(certificate)) ? null : "the certificate chain does not verify";
    }

    /// <summary>
    /// DANE (RFC 7672 §3.1): the peer's certificate matches a DANE-EE(3) record, with no name or
    /// date check; or a certificate the peer presented matches a DANE-TA(2) record, the leaf chains
    /// to it and names <paramref name="hostName"/>. Null on success, else why not.
    /// </summary>
    public static string? WhyNotDane(IReadOnlyList<TlsaRecord> records, X509Certificate? certificate, X509Chain? chain, string hostName)
    {
        if (certificate is null) return "no certificate";
        var leaf = certificate as X509Certificate2 ?? new X509Certificate2(certificate);
        foreach (var record in records.Where(r => r.CertificateUsage == TlsaCertificateUsage.DANEEE))
            if (Matches(record, leaf)) return null;
        var presented = Presented(chain).Where(c => !c.RawData.AsSpan().SequenceEqual(leaf.RawData)).ToList();
        foreach (var record in records.Where(r => r.CertificateUsage == TlsaCertificateUsage.DANETA))
        foreach (var anchor in presented.Where(c => Matches(record, c)))
        {
            if (!leaf.MatchesHostname(hostName)) return $"the certificate matches a DANE-TA record but is not for {hostName}";
            using var path = new X509Chain();
            path.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            path.ChainPolicy.CustomTrustStore.Add(anchor);
            path.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            path.ChainPolicy.ExtraStore.AddRange(presented.ToArray());
            if (path.Build(leaf)) return null;
        }
        return "the certificate matches none of the host's TLSA records";
    }

    /// <summary>The records DANE for SMTP can use: DANE-TA(2) and DANE-EE(3) with a known selector and matching type (RFC 7672 §3.1.3: PKIX-TA/EE are unusable).</summary>
    public static bool IsUsable(TlsaRecord record) =>
        record.CertificateUsage is TlsaCertificateUsage.DANETA or TlsaCertificateUsage.DANEEE
        && record.Selector is TlsaSelector.FullCertificate or TlsaSelector.PublicKey
        && record.MatchingType is TlsaMatchingType.ExactMatch or TlsaMatchingType.SHA256 or TlsaMatchingType.SHA512;

    private static bool Matches(TlsaRecord record, X509Certificate2 certificate)
    {
        byte[] selected = record.Selector == TlsaSelector.PublicKey ? certificate.PublicKey.ExportSubjectPublicKeyInfo() : certificate.RawData;
        byte[] data = record.MatchingType switch
        {
            TlsaMatchingType.SHA256 => SHA256.HashData(selected),
            TlsaMatchingType.SHA512 => SHA512.HashData(selected),
            _ => selected,
        };
        return data.AsSpan().SequenceEqual(record.CertificateAssociationData.ToArray());
    }

    /// <summary>What the peer sent and the platform built from it.</summary>
    private static IEnumerable<X509Certificate2> Presented(X509Chain? chain)
    {
        if (chain is null) yield break;
        foreach (var extra in chain.ChainPolicy.ExtraStore) yield return extra;
        foreach (var element in chain.ChainElements) yield return element.Certificate;
    }
}
