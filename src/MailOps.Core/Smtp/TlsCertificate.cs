using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MailOps.Core.Config;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Smtp;

/// <summary>
/// The certificate a listener presents, as TLS options for each new session. Configured files
/// (docs/configuration.md, Tls) are watched: when the certificate or key file changes on disk
/// (certbot renewed them), the next session loads and presents the new pair; a pair that cannot
/// be loaded is logged and the one in use stays.
/// </summary>
internal sealed class ServerCertificates
{
    private readonly TlsSettings _settings;
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private readonly object _gate = new();
    private SslServerAuthenticationOptionsHolder _current;

    private sealed record SslServerAuthenticationOptionsHolder(System.Net.Security.SslServerAuthenticationOptions Options, (DateTime, long)[] Stamps);

    /// <exception cref="ConfigException">The configured certificate cannot be loaded.</exception>
    public ServerCertificates(TlsSettings settings, string queuePath, string hostName, Microsoft.Extensions.Logging.ILogger log)
    {
        _settings = settings;
        _log = log;
        if (string.IsNullOrEmpty(settings.CertificatePath))
            _current = new(Options(TlsCertificate.LoadOrCreate(settings, queuePath, hostName), []), []);
        else
            _current = Load();
    }

    /// <summary>The options for a session starting now: reloaded first when the files changed.</summary>
    public System.Net.Security.SslServerAuthenticationOptions Current
    {
        get
        {
            var current = Volatile.Read(ref _current);
            if (current.Stamps.Length == 0 || Stamps().SequenceEqual(current.Stamps)) return current.Options;
            lock (_gate)
            {
                if (!Stamps().SequenceEqual(_current.Stamps))
                {
                    try
                    {
                        var loaded = Load();
                        Volatile.Write(ref _current, loaded);
                        _log.LogInformation(SmtpEvents.Listening, "Loaded the renewed certificate {Subject}, valid until {NotAfter:u}",
                            loaded.Options.ServerCertificateContext!.TargetCertificate.Subject, loaded.Options.ServerCertificateContext.TargetCertificate.NotAfter.ToUniversalTime());
                    }
                    catch (ConfigException ex)
                    {
                        // Half-written files (a renewal in progress) or a bad pair: keep serving the old one.
                        _log.LogWarning(SmtpEvents.TlsFailure, "The changed certificate files cannot be used, the previous certificate stays: {Reason}", ex.Message);
                        _current = _current with { Stamps = Stamps() };
                    }
                }
                return _current.Options;
            }
        }
    }

    private string[] Files => _settings.KeyPath is { } key ? [_settings.CertificatePath!, key] : [_settings.CertificatePath!];

    private (DateTime, long)[] Stamps() => Files.Select(f =>
    {
        var info = new FileInfo(f);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1L);
    }).ToArray();

    private SslServerAuthenticationOptionsHolder Load()
    {
        var stamps = Stamps();
        var (leaf, chain) = TlsCertificate.LoadConfigured(_settings);
        return new(Options(leaf, chain), stamps);
    }

    private static System.Net.Security.SslServerAuthenticationOptions Options(X509Certificate2 leaf, X509Certificate2Collection chain) => new()
    {
        // The chain (fullchain.pem's intermediates) is sent with the certificate.
        ServerCertificateContext = System.Net.Security.SslStreamCertificateContext.Create(leaf, chain, offline: true),
        ClientCertificateRequired = false,
    };
}

/// <summary>
/// The STARTTLS certificate (docs/configuration.md Tls): the configured files (PKCS#12; or a PEM
/// chain with its key in KeyPath or the same file), else a self-signed one generated on first use
/// and kept as <c>&lt;queue&gt;/control/tls.pfx</c> (mode 0600) so that every later start presents the same one.
/// </summary>
public static class TlsCertificate
{
    public const string GeneratedFileName = "tls.pfx";

    /// <exception cref="ConfigException">The configured certificate cannot be read or has no private key.</exception>
    public static X509Certificate2 LoadOrCreate(TlsSettings settings, string queuePath, string hostName)
    {
        if (!string.IsNullOrEmpty(settings.CertificatePath)) return Load(settings.CertificatePath, settings.CertificatePassword);
        string path = Path.Combine(queuePath, "control", GeneratedFileName);
        if (File.Exists(path)) return Load(path, null);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        byte[] pfx = CreateSelfSigned(hostName);
        string tmp = path + "." + Environment.ProcessId + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(tmp, options))
        {
            file.Write(pfx);
            file.Flush(flushToDisk: true);
        }
        try
        {
            // Two servers starting at once: the first rename wins and both use the file on disk.
            File.Move(tmp, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            File.Delete(tmp);
        }
        return Load(path, null);
    }

    /// <summary>The configured certificate with its private key, and the rest of its chain (PEM); the key file must not be readable by others.</summary>
    /// <exception cref="ConfigException">It cannot be loaded, has no key, or its key is readable by others.</exception>
    internal static (X509Certificate2 Leaf, X509Certificate2Collection Chain) LoadConfigured(TlsSettings settings)
    {
        string path = settings.CertificatePath!;
        string keyHolder = settings.KeyPath ?? path;
        if (!OperatingSystem.IsWindows() && File.Exists(keyHolder) && IsPem(keyHolder)
            && (File.GetUnixFileMode(keyHolder) & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
            throw new ConfigException($"Tls: the private key {keyHolder} is readable by others: chmod 600 (or 640 for a group such as ssl-cert) {keyHolder}");
        if (settings.KeyPath is null) return (Load(path, settings.CertificatePassword), []);
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(path, settings.KeyPath);
            // Round-trip through PKCS#12: SslStream on some platforms needs a persisted key.
            var leaf = new X509Certificate2(pem.Export(X509ContentType.Pkcs12));
            var all = new X509Certificate2Collection();
            all.ImportFromPemFile(path);
            var chain = new X509Certificate2Collection();
            foreach (var certificate in all)
                if (!certificate.RawData.AsSpan().SequenceEqual(leaf.RawData)) chain.Add(certificate);
            return (leaf, chain);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"Tls: cannot load the certificate {path} with the key {settings.KeyPath}: {ex.Message}", ex);
        }
    }

    private static bool IsPem(string path) =>
        path.EndsWith(".pem", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".crt", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".key", StringComparison.OrdinalIgnoreCase);

    private static X509Certificate2 Load(string path, string? password)
    {
        try
        {
            X509Certificate2 certificate;
            if (IsPem(path))
            {
                using var pem = X509Certificate2.CreateFromPemFile(path);
                // Round-trip through PKCS#12: SslStream on some platforms needs a persisted key.
                certificate = new X509Certificate2(pem.Export(X509ContentType.Pkcs12));
            }
            else
            {
                certificate = new X509Certificate2(File.ReadAllBytes(path), password);
            }
            if (!certificate.HasPrivateKey) throw new ConfigException($"Tls: {path} has no private key.");
            return certificate;
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"Tls: cannot load the certificate {path}: {ex.Message}", ex);
        }
    }

    private static byte[] CreateSelfSigned(string hostName)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={hostName}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(hostName);
        names.AddDnsName("localhost");
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddIpAddress(System.Net.IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(10));
        return certificate.Export(X509ContentType.Pkcs12);
    }
}
