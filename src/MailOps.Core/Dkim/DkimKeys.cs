using System.Security.Cryptography;
using MailOps.Core.Queue;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Pkcs;
using Org.BouncyCastle.Security;

namespace MailOps.Core.Dkim;

/// <summary>A DKIM signing algorithm MailOps generates keys for.</summary>
public enum DkimAlgorithm
{
    /// <summary>rsa-sha256 with a 2048-bit key: what every verifier knows.</summary>
    Rsa,
    /// <summary>ed25519-sha256 (RFC 8463): short keys; sign with an RSA key beside it, as not every verifier knows it yet.</summary>
    Ed25519,
}

/// <summary>One signing key: its domain and selector, and the TXT record that publishes it.</summary>
public sealed class DkimKey
{
    public required string Domain { get; init; }
    public required string Selector { get; init; }
    public required DkimAlgorithm Algorithm { get; init; }
    /// <summary>Where the TXT record goes: <c>selector._domainkey.domain</c>.</summary>
    public string RecordName => $"{Selector}._domainkey.{Domain}";
    /// <summary>The exact TXT record to publish (<c>v=DKIM1; k=rsa; p=...</c>).</summary>
    public required string TxtRecord { get; init; }
    /// <summary>The private key file (0600, under the queue's control/dkim).</summary>
    public required string Path { get; init; }
    public DateTimeOffset Created { get; init; }

    public override string ToString() => $"{RecordName} IN TXT \"{TxtRecord}\"";
}

/// <summary>
/// The DKIM keys of a queue (docs/delivery.md, "DKIM signing"): one PEM file per domain and
/// selector under <c>&lt;queue&gt;/control/dkim/&lt;domain&gt;/&lt;selector&gt;.pem</c>, private to the
/// queue's owner (0600 in 0700 directories). Every key of a message's From: domain signs it.
/// </summary>
public sealed class DkimKeys(string queuePath)
{
    public string Directory { get; } = System.IO.Path.Combine(queuePath, "control", "dkim");

    /// <summary>Makes a key. An existing selector is never overwritten (the published record would stop matching).</summary>
    /// <exception cref="ArgumentException">A domain or selector that cannot be a DNS label.</exception>
    /// <exception cref="IOException">The selector exists already.</exception>
    public DkimKey Generate(string domain, string selector, DkimAlgorithm algorithm = DkimAlgorithm.Rsa)
    {
        domain = CheckName(Normalize(domain), "domain");
        selector = CheckName(selector.Trim().ToLowerInvariant(), "selector");
        string directory = System.IO.Path.Combine(Directory, domain);
        DurableFile.CreatePrivateDirectory(System.IO.Path.GetDirectoryName(Directory)!); // control/
        DurableFile.CreatePrivateDirectory(Directory);
        DurableFile.CreatePrivateDirectory(directory);
        string path = System.IO.Path.Combine(directory, selector + ".pem");
        string pem;
        if (algorithm == DkimAlgorithm.Rsa)
        {
            using var rsa = RSA.Create(2048);
            pem = rsa.ExportPkcs8PrivateKeyPem();
        }
        else
        {
            var generator = new Ed25519KeyPairGenerator();
            generator.Init(new Ed25519KeyGenerationParameters(new SecureRandom()));
            var pair = generator.GenerateKeyPair();
            pem = PemEncoding.WriteString("PRIVATE KEY", PrivateKeyInfoFactory.CreatePrivateKeyInfo(pair.Private).GetEncoded());
        }
        using (var file = DurableFile.OpenPrivate(path, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        using (var writer = new StreamWriter(file))
            writer.Write(pem + "\n");
        return Read(domain, path)!;
    }

    /// <summary>Every key, or those of <paramref name="domain"/>, by domain and selector.</summary>
    public IReadOnlyList<DkimKey> List(string? domain = null)
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        var domains = domain is null ? System.IO.Directory.GetDirectories(Directory).Select(System.IO.Path.GetFileName)
                                     : [Normalize(domain)];
        var keys = new List<DkimKey>();
        foreach (var d in domains.Order(StringComparer.Ordinal))
        {
            string dir = System.IO.Path.Combine(Directory, d!);
            if (!System.IO.Directory.Exists(dir)) continue;
            foreach (var file in System.IO.Directory.GetFiles(dir, "*.pem").Order(StringComparer.Ordinal))
                if (Read(d!, file) is { } key) keys.Add(key);
        }
        return keys;
    }

    /// <summary>Signers by domain folder, kept while the folder is unchanged (a key added or removed changes it).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (DateTime Stamp, IReadOnlyList<DkimSigner> Signers)> s_signers = new();

    /// <summary>
    /// A signer for every key of <paramref name="domain"/> (RSA first); empty when it has none.
    /// Keys are read once and kept; RSA signs through the platform's RSA (OpenSSL), many times
    /// faster than the managed implementation MimeKit would otherwise use.
    /// </summary>
    public IReadOnlyList<DkimSigner> SignersFor(string domain)
    {
        domain = Normalize(domain);
        if (domain.Length == 0 || domain.Contains('/') || domain.Contains('\\') || domain.StartsWith('.')) return [];
        string dir = System.IO.Path.Combine(Directory, domain);
        if (!System.IO.Directory.Exists(dir)) return [];
        var stamp = System.IO.Directory.GetLastWriteTimeUtc(dir);
        if (s_signers.TryGetValue(dir, out var cached) && cached.Stamp == stamp) return cached.Signers;
        var signers = new List<(DkimAlgorithm Algorithm, DkimSigner Signer)>();
        foreach (var path in System.IO.Directory.GetFiles(dir, "*.pem").Order(StringComparer.Ordinal))
        {
            var (pem, key) = LoadKey(path);
            string selector = System.IO.Path.GetFileNameWithoutExtension(path);
            DkimSigner signer;
            if (key is Ed25519PrivateKeyParameters)
                signer = new DkimSigner(key, domain, selector, DkimSignatureAlgorithm.Ed25519Sha256);
            else
            {
                var rsa = RSA.Create();
                rsa.ImportFromPem(pem);
                signer = new PlatformRsaDkimSigner(key, rsa, domain, selector);
            }
            signer.HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
            signer.BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
            signers.Add((key is Ed25519PrivateKeyParameters ? DkimAlgorithm.Ed25519 : DkimAlgorithm.Rsa, signer));
        }
        var ordered = signers.OrderBy(s => s.Algorithm).Select(s => s.Signer).ToList();
        s_signers[dir] = (stamp, ordered);
        return ordered;
    }

    /// <summary>rsa-sha256 through .NET's RSA: MimeKit computes the canonical forms, the platform signs.</summary>
    private sealed class PlatformRsaDkimSigner(Org.BouncyCastle.Crypto.AsymmetricKeyParameter key, RSA rsa, string domain, string selector)
        : DkimSigner(key, domain, selector, DkimSignatureAlgorithm.RsaSha256)
    {
        protected override Org.BouncyCastle.Crypto.ISigner CreateSigningContext() => new Sha256RsaSigner(rsa);
    }

    private sealed class Sha256RsaSigner(RSA rsa) : Org.BouncyCastle.Crypto.ISigner
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        public string AlgorithmName => "SHA-256withRSA";
        public void Init(bool forSigning, Org.BouncyCastle.Crypto.ICipherParameters parameters) { }
        public void Update(byte input) => _hash.AppendData([input]);
        public void BlockUpdate(byte[] input, int inOff, int inLen) => _hash.AppendData(input, inOff, inLen);
        public void BlockUpdate(ReadOnlySpan<byte> input) => _hash.AppendData(input);
        public int GetMaxSignatureSize() => rsa.KeySize / 8;
        public byte[] GenerateSignature() => rsa.SignHash(_hash.GetHashAndReset(), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        public bool VerifySignature(byte[] signature) => rsa.VerifyHash(_hash.GetHashAndReset(), signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        public void Reset() => _hash.GetHashAndReset();
    }

    private static DkimKey? Read(string domain, string path)
    {
        string pem;
        Org.BouncyCastle.Crypto.AsymmetricKeyParameter key;
        try { (pem, key) = LoadKey(path); }
        catch (IOException) { return null; }
        string record;
        DkimAlgorithm algorithm;
        if (key is Ed25519PrivateKeyParameters ed)
        {
            algorithm = DkimAlgorithm.Ed25519;
            record = "v=DKIM1; k=ed25519; p=" + Convert.ToBase64String(ed.GeneratePublicKey().GetEncoded());
        }
        else
        {
            using var rsa = RSA.Create();
            rsa.ImportFromPem(pem);
            algorithm = DkimAlgorithm.Rsa;
            record = "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo());
        }
        return new DkimKey
        {
            Domain = domain,
            Selector = System.IO.Path.GetFileNameWithoutExtension(path),
            Algorithm = algorithm,
            TxtRecord = record,
            Path = path,
            Created = File.GetLastWriteTimeUtc(path),
        };
    }

    /// <summary>A key file's PEM text and its private key (PKCS#8: RSA or Ed25519).</summary>
    private static (string Pem, Org.BouncyCastle.Crypto.AsymmetricKeyParameter Key) LoadKey(string path)
    {
        string pem = File.ReadAllText(path);
        return (pem, PrivateKeyFactory.CreateKey(Convert.FromBase64String(pem[PemEncoding.Find(pem).Base64Data])));
    }

    private static string Normalize(string domain) => domain.Trim().TrimEnd('.').ToLowerInvariant();

    private static string CheckName(string name, string what)
    {
        bool ok = name.Length is > 0 and < 254 && name.Split('.').All(label => label.Length is > 0 and < 64 &&
                  label.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-') && label[0] != '-' && label[^1] != '-');
        return ok ? name : throw new ArgumentException($"'{name}' is not a valid DKIM {what} (letters, digits, hyphens; dots between labels).");
    }
}
