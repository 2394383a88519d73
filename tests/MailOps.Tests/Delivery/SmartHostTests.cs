using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// Relaying through an authenticated provider: aiosmtpd (Debian's python3-aiosmtpd) plays one with
/// STARTTLS-then-AUTH on one port, implicit TLS on another and a plain port with neither; its
/// certificate comes from a test CA that MailOps trusts through TlsTrustAnchors.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SmartHostTests : IAsyncLifetime
{
    private readonly TempQueue _q = new();
    private Process? _provider;
    private int _starttls, _implicit, _plain;
    private string Received => Path.Combine(_q.Root, "provider");
    private string CaPem => Path.Combine(_q.Root, "ca.pem");

    public async Task InitializeAsync()
    {
        if (Peers.Find("python3") is null || !File.Exists("/usr/bin/python3")) return;
        Directory.CreateDirectory(Received);
        using var ca = new TestCa();
        using var leaf = ca.Issue("relay.test");
        ca.WritePem(CaPem);
        string certPem = Path.Combine(_q.Root, "relay.pem"), keyPem = Path.Combine(_q.Root, "relay.key");
        TestCa.WritePem(leaf, certPem, keyPem);

        (_starttls, _implicit, _plain) = (TestPorts.Free(), TestPorts.Free(), TestPorts.Free());
        var start = Programs.StartInfo("/usr/bin/python3", [Path.Combine(Programs.RepoRoot, "tests", "peers", "provider.py"),
            "--cert", certPem, "--key", keyPem, "--dir", Received, "--starttls-port", _starttls.ToString(), "--implicit-port", _implicit.ToString(),
            "--plain-port", _plain.ToString(), "--user", "app", "--password", "s3cret", "--xoauth2-token", "ya29.token-1", "--lifetime", "300", "--watch-stdin"]);
        _provider = Process.Start(start)!;
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string? line;
        do line = await _provider.StandardOutput.ReadLineAsync(wait.Token); // aiosmtpd prints notes of its own first
        while (line is not null && line != "READY");
        if (line is null)
        {
            _provider.Kill();
            Assert.Fail("provider.py did not start: " + await _provider.StandardError.ReadToEndAsync());
        }
    }


    private string Credentials(string password)
    {
        string path = Path.Combine(_q.Root, "relay-" + password + ".secret");
        File.WriteAllText(path, "app:" + password + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private MailOpsConfig Config(TransportSettings smartHost, bool trust = true) => new()
    {
        HostName = "app.test",
        LocalDomains = ["app.test"],
        Listen = ["127.0.0.1:1"],
        RetrySchedule = ["1h"],
        SmartHost = smartHost,
        TlsTrustAnchors = trust ? CaPem : null,
        Tls = new TlsSettings { Enabled = false },
        MaildirRoot = Path.Combine(_q.Root, "maildir"),
    };

    private async Task<(EnvelopeRecipient Recipient, IReadOnlyList<JournalEvent> Journal)> SendAsync(MailOpsConfig config)
    {
        config.Validate();
        using var store = _q.Open();
        string id = await MailNetwork.EnqueueAsync(store, "app@app.test", ["customer@example.com"]);
        await MailNetwork.PassAsync(config, store, [id]);
        var envelope = store.ReadEnvelope(id);
        var journal = store.ReadJournal(id);
        return (envelope?.Recipients.Single() ?? new EnvelopeRecipient { Address = "customer@example.com", State = RecipientState.Delivered }, journal);
    }

    private string[] Arrived() => Directory.GetFiles(Received).Select(File.ReadAllText).ToArray();

    [PeerFact("python3")]
    public async Task Right_password_after_STARTTLS_is_delivered_and_a_wrong_one_defers_with_the_535_in_the_trace()
    {
        var (delivered, _) = await SendAsync(Config(new TransportSettings { Host = $"127.0.0.1:{_starttls}", Tls = TransportTls.Required, CredentialsFile = Credentials("s3cret") }));
        Assert.True(delivered.State == RecipientState.Delivered, delivered.LastError);
        var arrived = Assert.Single(Arrived());
        Assert.StartsWith("X-Provider-Auth: app\r\n", arrived);

        var (refused, journal) = await SendAsync(Config(new TransportSettings { Host = $"127.0.0.1:{_starttls}", Tls = TransportTls.Required, CredentialsFile = Credentials("wrong") }));
        Assert.Equal(RecipientState.Deferred, refused.State); // never a bounce
        Assert.Equal("4.7.8", refused.Status);
        Assert.Contains(journal, e => e.Event == JournalEventType.Attempt && e.Detail?.Contains("AUTH refused: 535") == true);
        Assert.Single(Arrived());
    }

    [PeerFact("python3")]
    public async Task XOAUTH2_sends_the_access_token_and_reads_the_file_again_at_every_connection()
    {
        string tokenFile = Path.Combine(_q.Root, "token.secret");
        File.WriteAllText(tokenFile, "app:ya29.token-1\n");
        File.SetUnixFileMode(tokenFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var smartHost = new TransportSettings { Host = $"127.0.0.1:{_starttls}", Tls = TransportTls.Required, CredentialsFile = tokenFile, Auth = TransportAuth.XOAuth2 };
        var config = Config(smartHost);
        var (delivered, _) = await SendAsync(config);
        Assert.True(delivered.State == RecipientState.Delivered, delivered.LastError);
        Assert.StartsWith("X-Provider-Auth: app via XOAUTH2\r\n", Assert.Single(Arrived()));

        // The token expired and the refresher wrote a new one the provider does not know (yet):
        // the same running configuration reads it, and the mail waits (4.7.8), never bounces.
        File.WriteAllText(tokenFile, "app:ya29.token-2\n");
        var (refused, journal) = await SendAsync(config);
        Assert.Equal(RecipientState.Deferred, refused.State);
        Assert.Equal("4.7.8", refused.Status);
        Assert.DoesNotContain(journal, e => e.Detail?.Contains("ya29") == true); // the token never reaches the journal
        Assert.Single(Arrived());
    }

    [PeerFact("python3")]
    public async Task Implicit_TLS_on_a_465_style_port_with_a_credential_given_in_code()
    {
        var smartHost = new TransportSettings { Host = "127.0.0.1", Port = _implicit, Tls = TransportTls.Implicit, Credential = new NetworkCredential("app", "s3cret") };
        var (delivered, _) = await SendAsync(Config(smartHost));
        Assert.True(delivered.State == RecipientState.Delivered, delivered.LastError);
        Assert.StartsWith("X-Provider-Auth: app\r\n", Assert.Single(Arrived()));
    }

    [PeerFact("python3")]
    public async Task Required_TLS_or_credentials_never_go_in_clear_and_an_untrusted_certificate_defers()
    {
        var (noStarttls, journal) = await SendAsync(Config(new TransportSettings { Host = $"127.0.0.1:{_plain}", Tls = TransportTls.Required }));
        Assert.Equal(RecipientState.Deferred, noStarttls.State);
        Assert.Equal("4.7.4", noStarttls.Status);
        Assert.Contains(journal, e => e.Detail?.Contains("not sent in clear") == true);

        var (opportunisticWithPassword, _) = await SendAsync(Config(new TransportSettings { Host = $"127.0.0.1:{_plain}", CredentialsFile = Credentials("s3cret") }));
        Assert.Equal(RecipientState.Deferred, opportunisticWithPassword.State);
        Assert.Equal("4.7.4", opportunisticWithPassword.Status);

        var (untrusted, untrustedJournal) = await SendAsync(Config(new TransportSettings { Host = $"127.0.0.1:{_starttls}", Tls = TransportTls.Required, CredentialsFile = Credentials("s3cret") }, trust: false));
        Assert.Equal(RecipientState.Deferred, untrusted.State);
        Assert.Equal("4.7.5", untrusted.Status);
        Assert.Empty(Arrived()); // nothing reached the provider, in clear or otherwise
    }

    [Fact]
    public void Credentials_never_sit_in_the_configuration_and_their_file_must_be_private()
    {
        string config = Path.Combine(_q.Root, "config.json");
        File.WriteAllText(config, """{ "SmartHost": { "Host": "relay.example.net:587", "Tls": "Required", "Password": "hunter2" } }""");
        var inline = Assert.Throws<ConfigException>(() => MailOpsConfig.Load(config, required: true));
        Assert.Contains("CredentialsFile", inline.Message); // says where credentials go instead
        Assert.DoesNotContain("hunter2", inline.Message);

        string secret = Path.Combine(_q.Root, "open.secret");
        File.WriteAllText(secret, "app:hunter2\n");
        if (OperatingSystem.IsLinux()) File.SetUnixFileMode(secret, (UnixFileMode)0x1a4); // 0644
        File.WriteAllText(config, $$"""{ "SmartHost": { "Host": "relay.example.net:587", "Tls": "Required", "CredentialsFile": "{{secret}}" } }""");
        var exposed = Assert.Throws<ConfigException>(() => MailOpsConfig.Load(config, required: true));
        Assert.Contains("chmod 600", exposed.Message);
        Assert.DoesNotContain("hunter2", exposed.Message);

        File.WriteAllText(config, """{ "SmartHost": "relay.example.net:587", "Routes": { "partner.example": { "Host": "mx.partner.example", "Tls": "Implicit" } } }""");
        var loaded = MailOpsConfig.Load(config, required: true);
        Assert.Equal(TransportTls.Opportunistic, loaded.SmartHost!.Tls);
        Assert.True(loaded.Routes["PARTNER.example"].TryGetEndpoint(25, out var endpoint));
        Assert.Equal(465, endpoint.Port); // Implicit TLS defaults to port 465
    }

    public async Task DisposeAsync()
    {
        if (_provider is { HasExited: false })
        {
            _provider.StandardInput.Close();
            if (!_provider.WaitForExit(10_000)) _provider.Kill();
        }
        _provider?.Dispose();
        _q.Dispose();
        await Task.CompletedTask;
    }
}
