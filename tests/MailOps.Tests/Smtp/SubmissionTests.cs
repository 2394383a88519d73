using System.Net;
using System.Text;
using MailOps.Core.Config;
using MailOps.Core.Smtp;

namespace MailOps.Tests.Smtp;

/// <summary>
/// The submission roles (RFC 6409, RFC 8314): /submission wants STARTTLS before AUTH and AUTH
/// before MAIL, /submissions is TLS from the first byte; an authenticated user sends only as
/// their own addresses. Clients: openssl s_client, swaks, Python's smtplib.
/// </summary>
public sealed class SubmissionTests : IAsyncDisposable
{
    private const string Password = "correct horse";
    private readonly SmtpFixture _f;
    private readonly SmtpListener _listener;

    public SubmissionTests()
    {
        _f = new SmtpFixture(c =>
        {
            c.Tls = new TlsSettings { Enabled = true };
            c.Listen = ["127.0.0.1:0/submission", "127.0.0.1:0/submissions"];
            c.Users = [new UserSettings { Name = "alice@example.com", PasswordHash = PasswordHash.Create(Password, iterations: 1000) }];
            c.Aliases = new(StringComparer.OrdinalIgnoreCase) { ["sales@example.com"] = ["alice@example.com"] };
        });
        _listener = new SmtpListener(_f.Context);
        _listener.Start();
    }

    private int SubmissionPort => _listener.Listening.Single(l => l.Role == ListenerRole.Submission).Endpoint.Port;
    private int SubmissionsPort => _listener.Listening.Single(l => l.Role == ListenerRole.Submissions).Endpoint.Port;

    /// <summary>smtplib against both ports; prints "step code" lines.</summary>
    private const string Client = """
        import smtplib, ssl, sys
        port, tls_port, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        def send(s, sender, from_header, name):
            s.mail(sender)
            s.rcpt("bob@far.test")
            code, _ = s.data(f"From: {from_header}\r\nSubject: {name}\r\n\r\nhello\r\n".encode())
            print(name, code)
        s = smtplib.SMTP("127.0.0.1", port); s.ehlo("laptop.local")
        print("auth-before-starttls", s.docmd("AUTH PLAIN", "AGFsaWNlQGV4YW1wbGUuY29tAGNvcnJlY3QgaG9yc2U=")[0])
        print("mail-before-starttls", s.docmd("MAIL FROM:<alice@example.com>")[0])
        s.starttls(context=ctx); s.ehlo("laptop.local")
        print("mail-before-auth", s.docmd("MAIL FROM:<alice@example.com>")[0])
        s.login("alice@example.com", password)
        send(s, "alice@example.com", "Alice <alice@example.com>", "starttls-own")
        send(s, "sales@example.com", "sales@example.com", "starttls-alias")
        print("foreign-mail-from", s.mail("bob@example.com")[0]); s.rset()
        s.mail("alice@example.com"); s.rcpt("bob@far.test")
        print("foreign-from-header", s.data(b"From: bob@example.com\r\nSubject: spoof\r\n\r\nhello\r\n")[0])
        s.quit()
        s = smtplib.SMTP_SSL("127.0.0.1", tls_port, context=ctx); s.ehlo("laptop.local")
        print("implicit-mail-before-auth", s.docmd("MAIL FROM:<alice@example.com>")[0])
        s.login("alice@example.com", password)
        send(s, "alice@example.com", "alice@example.com", "implicit-own")
        s.quit()
        """;

    [PeerFact("python3")]
    public async Task Python_smtplib_submits_on_both_ports_and_meets_each_rule_with_its_code()
    {
        var result = await Programs.RunAsync("/usr/bin/python3", ["-c", Client, SubmissionPort.ToString(), SubmissionsPort.ToString(), Password]);
        Assert.True(result.ExitCode == 0, result.ToString());
        var codes = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToDictionary(p => p[0], p => p[1]);
        void Is(string expected, string step) => Assert.True(codes[step] == expected, $"{step}: {codes[step]}, not {expected}\n{result.Stdout}");
        Is("530", "auth-before-starttls");
        Is("530", "mail-before-starttls");
        Is("530", "mail-before-auth");
        Is("250", "starttls-own");
        Is("250", "starttls-alias");
        Is("553", "foreign-mail-from");
        Is("553", "foreign-from-header");
        Is("530", "implicit-mail-before-auth");
        Is("250", "implicit-own");

        var messages = _f.Messages();
        Assert.Equal(3, messages.Count);
        var own = messages.Single(m => m.Body.Contains("Subject: starttls-own")).Body;
        // The trusted treatment: a Message-ID and a Date were added; the user's address and laptop stay private.
        Assert.Matches(@"(?m)^Message-ID: <[0-9a-z]+@", own);
        Assert.Matches(@"(?m)^Date: ", own);
        string raw = Encoding.UTF8.GetString(ReadAll(_f.Store.OpenBody(messages[0].Envelope.Id!)));
        Assert.Contains("(authenticated user alice@example.com)", raw);
        Assert.DoesNotContain("127.0.0.1", raw);
        Assert.DoesNotContain("laptop.local", raw);
        Assert.All(messages, m => Assert.Equal("alice@example.com", m.Envelope.AuthenticatedUser));
    }

    [PeerFact("swaks", "openssl")]
    public async Task Swaks_submits_on_both_ports_and_openssl_sees_the_banner_over_TLS()
    {
        var banner = await Programs.RunAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{SubmissionsPort}", "-quiet", "-verify_quiet"], stdin: "QUIT\r\n");
        Assert.Contains("220 ", banner.Stdout);
        foreach (var (port, tls) in new[] { (SubmissionPort, "--tls"), (SubmissionsPort, "--tls-on-connect") })
        {
            var swaks = await Programs.RunAsync("swaks", ["--server", $"127.0.0.1:{port}", tls, "--auth", "PLAIN", "--auth-user", "alice@example.com", "--auth-password", Password,
                "--from", "alice@example.com", "--to", "bob@far.test", "--helo", "client.test"]);
            Assert.True(swaks.ExitCode == 0, swaks.ToString());
        }
        Assert.Equal(2, _f.Messages().Count);
        // Without credentials swaks is refused at MAIL, and nothing more is queued.
        var refused = await Programs.RunAsync("swaks", ["--server", $"127.0.0.1:{SubmissionPort}", "--tls", "--from", "alice@example.com", "--to", "bob@far.test"]);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("530 5.7.0", refused.Stdout + refused.Stderr);
        Assert.Equal(2, _f.Messages().Count);
    }

    [Fact]
    public void A_submission_port_without_TLS_or_users_is_a_configuration_error()
    {
        using var f = new SmtpFixture(c => { c.Tls = new TlsSettings { Enabled = false }; c.Listen = ["127.0.0.1:0/submission"]; c.Users = [new UserSettings { Name = "a", PasswordHash = PasswordHash.Create("x", iterations: 1000) }]; });
        Assert.Contains("TLS", Assert.Throws<ConfigException>(() => new SmtpListener(f.Context)).Message);
        Assert.Contains("role", Assert.Throws<ConfigException>(() => ListenEndpoint.Parse("127.0.0.1:587/relay")).Message);
        Assert.Equal(ListenerRole.Submissions, ListenEndpoint.Parse("[::1]:465/submissions").Role);
    }

    private static byte[] ReadAll(Stream s)
    {
        using (s)
        {
            var ms = new MemoryStream();
            s.CopyTo(ms);
            return ms.ToArray();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _listener.StopAsync(TimeSpan.FromSeconds(5));
        _f.Dispose();
    }
}
