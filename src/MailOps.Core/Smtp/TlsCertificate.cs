using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MailOps.Core.Config;

namespace MailOps.Core.Smtp;

/// <summary>
/// The STARTTLS certificate (docs/configuration.md Tls): the configured file (PKCS#12, or PEM with the key in
/// the same file), else a self-signed one generated on first use and kept as
/// <c>&lt;queue&gt;/control/tls.pfx</c> (mode 0600) so that every later start presents the same one.
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

    private static X509Certificate2 Load(string path, string? password)
    {
        try
        {
            X509Certificate2 certificate;
            if (path.EndsWith(".pem", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".crt", StringComparison.OrdinalIgnoreCase))
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
