using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MailOps.Core.Config;
using MailOps.Core.Smtp;
using MailOps.Tests.Delivery;

namespace MailOps.Tests.Smtp;

/// <summary>PEM certificates as certbot leaves them (fullchain.pem, privkey.pem), picked up again when they change on disk.</summary>
public sealed class CertificateTests : ListenerTestBase
{
    private static void WritePair(X509Certificate2 leaf, X509Certificate2 ca, string chain, string key)
    {
        File.WriteAllText(chain, leaf.ExportCertificatePem() + "\n" + ca.ExportCertificatePem() + "\n");
        File.WriteAllText(key, leaf.GetRSAPrivateKey()!.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>EHLO, STARTTLS, the handshake: the certificate and the chain the server presented.</summary>
    private static async Task<(X509Certificate2 Leaf, int ChainLength)> PresentedAsync(IPEndPoint endpoint)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint);
        var stream = tcp.GetStream();
        var reader = new StreamReader(stream, Encoding.ASCII);
        async Task<string> ReplyAsync()
        {
            string? line;
            do line = await reader.ReadLineAsync(); while (line is not null && line.Length > 3 && line[3] == '-');
            return line ?? "";
        }
        Assert.StartsWith("220", await ReplyAsync());
        await stream.WriteAsync("EHLO client.test\r\n"u8.ToArray());
        Assert.StartsWith("250", await ReplyAsync());
        await stream.WriteAsync("STARTTLS\r\n"u8.ToArray());
        Assert.StartsWith("220", await ReplyAsync());
        X509Certificate2? leaf = null;
        int chain = 0;
        using var tls = new SslStream(stream, leaveInnerStreamOpen: true, (_, certificate, c, _) =>
        {
            leaf = new X509Certificate2(certificate!);
            chain = c?.ChainPolicy.ExtraStore.Count ?? 0;
            return true;
        });
        await tls.AuthenticateAsClientAsync("mx.test");
        return (leaf!, chain);
    }

    [Fact]
    public async Task A_renewed_certificate_is_presented_to_the_next_session_without_a_restart()
    {
        using var ca = new TestCa();
        using var first = ca.Issue("mx.test");
        using var renewed = ca.Issue("mx.test");
        using var dir = new TempQueue();
        string chain = Path.Combine(dir.Root, "fullchain.pem"), key = Path.Combine(dir.Root, "privkey.pem");
        WritePair(first, ca.Certificate, chain, key);
        var endpoint = Start(c => c.Tls = new TlsSettings { Enabled = true, CertificatePath = chain, KeyPath = key });

        var (presented, chainLength) = await PresentedAsync(endpoint);
        Assert.Equal(first.Thumbprint, presented.Thumbprint);
        Assert.True(chainLength >= 1, "the intermediate of fullchain.pem is sent with the certificate");

        WritePair(renewed, ca.Certificate, chain, key);
        Assert.Equal(renewed.Thumbprint, (await PresentedAsync(endpoint)).Leaf.Thumbprint);

        // A half-written renewal (a key that does not match) leaves the renewed pair in use.
        File.WriteAllText(key, first.GetRSAPrivateKey()!.ExportPkcs8PrivateKeyPem());
        Assert.Equal(renewed.Thumbprint, (await PresentedAsync(endpoint)).Leaf.Thumbprint);
    }

    [Fact]
    public void A_private_key_others_can_read_is_a_configuration_error()
    {
        using var ca = new TestCa();
        using var leaf = ca.Issue("mx.test");
        using var dir = new TempQueue();
        string chain = Path.Combine(dir.Root, "fullchain.pem"), key = Path.Combine(dir.Root, "privkey.pem");
        WritePair(leaf, ca.Certificate, chain, key);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var ex = Assert.Throws<ConfigException>(() => new SmtpFixture(c => c.Tls = new TlsSettings { Enabled = true, CertificatePath = chain, KeyPath = key }));
        Assert.Contains("readable by others", ex.Message);
    }
}
