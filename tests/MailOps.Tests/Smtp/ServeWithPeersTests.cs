using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MailOps.Tests.Smtp;

/// <summary>
/// `mailops serve` as a separate process, driven by real clients: swaks, Python's smtplib and
/// Postfix's smtp-source. Each message they send must be in the queue afterwards, byte-identical.
/// </summary>
public sealed class ServeWithPeersTests : IAsyncLifetime
{
    private readonly TempQueue _q = new();
    private Process? _serve;
    private readonly List<string> _log = new();
    private int _port;
    private const string Password = "peer-pass";

    public async Task InitializeAsync()
    {
        var hash = await Programs.RunAsync(Programs.Mailops, ["passwd", "--iterations", "1000"], Password + "\n");
        Assert.Equal(0, hash.ExitCode);
        string config = Path.Combine(_q.Root, "config.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
        {
            HostName = "mx.peer.test",
            LocalDomains = new[] { "self.test" },
            Mailboxes = new[] { "*@self.test" },
            RelayClients = Array.Empty<string>(),
            InboundAuthentication = "Off", // no test DNS here
            MaxConnectionsPerClient = 100,
            RateLimits = new { ConnectionsPerMinute = 0, MessagesPerMinute = 0, RecipientsPerMinute = 0 }, // a load test from one address
            Users = new[] { new { Name = "peer", PasswordHash = hash.Stdout.Trim() } },
        }));
        var serving = new TaskCompletionSource<int>();
        _serve = Process.Start(Programs.StartInfo(Programs.Mailops, ["serve", "--config", config, "--queue", _q.QueuePath, "--listen", "127.0.0.1:0", "--no-delivery"]))!;
        _serve.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_log) _log.Add(e.Data);
            var m = Regex.Match(e.Data, @"serving on 127\.0\.0\.1:(\d+)");
            if (m.Success) serving.TrySetResult(int.Parse(m.Groups[1].Value));
        };
        _serve.BeginErrorReadLine();
        Assert.True(await Task.WhenAny(serving.Task, Task.Delay(30_000)) == serving.Task, "serve did not start:\n" + Log);
        _port = serving.Task.Result;
    }

    private string Log { get { lock (_log) return string.Join('\n', _log); } }

    public Task DisposeAsync()
    {
        if (_serve is not null)
        {
            Process.Start("kill", ["-TERM", _serve.Id.ToString()])!.WaitForExit();
            if (!_serve.WaitForExit(20_000)) _serve.Kill();
            _serve.Dispose();
        }
        _q.Dispose();
        return Task.CompletedTask;
    }

    private byte[] StoredBody(string id)
    {
        using var store = _q.Open();
        using var body = store.OpenBody(id);
        using var ms = new MemoryStream();
        body.CopyTo(ms);
        return Encoding.UTF8.GetBytes(SmtpFixture.StripOwnReceived(Encoding.UTF8.GetString(ms.ToArray())));
    }

    private static string QueuedId(string transcript) =>
        Regex.Match(transcript, @"queued as ([0-9a-z]{16})").Groups[1].Value is { Length: 16 } id ? id : throw new Xunit.Sdk.XunitException("no queue id in:\n" + transcript);

    /// <summary>A message with the lines that dot-stuffing must get right, 8-bit text and a long line.</summary>
    private static string TrickyMessage(string subject) =>
        $"From: Peer <peer@ext.test>\r\nTo: alice@self.test\r\nSubject: {subject}\r\nMessage-ID: <{Guid.NewGuid():N}@ext.test>\r\n" +
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
        ".\r\n..\r\n.x\r\n..x\r\n. space\r\nGrüße aus Köln\r\n" + new string('w', 990) + "\r\nlast\r\n";

    [PeerFact("swaks")]
    public async Task Swaks_with_STARTTLS_and_AUTH_PLAIN_queues_the_message_byte_identical()
    {
        string message = TrickyMessage("swaks");
        string file = Path.Combine(_q.Root, "swaks.eml");
        // swaks sends the file, then CRLF.CRLF: the file's own last line end would become an empty line.
        await File.WriteAllTextAsync(file, message[..^2]);
        var run = await Programs.RunAsync(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_port}", "--tls", "--auth", "PLAIN",
            "--auth-user", "peer", "--auth-password", Password, "--from", "peer@ext.test", "--to", "someone@far.test", "--data", file, "--helo", "swaks.test"]);
        Assert.True(run.ExitCode == 0, run.ToString() + "\n" + Log);
        Assert.Equal(Convert.ToHexString(Encoding.UTF8.GetBytes(message)), Convert.ToHexString(StoredBody(QueuedId(run.Stdout))));

        // Without AUTH the same relay is refused (554 5.7.1), and swaks says so.
        var refused = await Programs.RunAsync(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_port}", "--from", "peer@ext.test", "--to", "someone@far.test", "--data", file]);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("554 5.7.1", refused.Stdout);
    }

    [PeerFact("python3")]
    public async Task Python_smtplib_with_STARTTLS_and_LOGIN_queues_the_message_byte_identical()
    {
        string message = TrickyMessage("smtplib");
        string script = Path.Combine(_q.Root, "send.py");
        await File.WriteAllTextAsync(script, """
            import smtplib, ssl, sys
            port, password, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
            data = open(path, 'rb').read()
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP('127.0.0.1', port, local_hostname='python.test') as s:
                s.starttls(context=context)
                s.ehlo()
                s.login('peer', password)       # smtplib prefers CRAM-MD5, PLAIN, LOGIN: PLAIN here
                refused = s.sendmail('peer@ext.test', ['alice@self.test', 'bob@self.test'], data, mail_options=['BODY=8BITMIME'])
                assert not refused, refused
                code, reply = s.docmd('NOOP')
                print(code, reply.decode())
                print(s.ehlo_resp.decode())
            """.Replace("\n            ", "\n"));
        string file = Path.Combine(_q.Root, "python.eml");
        await File.WriteAllTextAsync(file, message);
        var run = await Programs.RunAsync(Peers.Require("python3"), [script, _port.ToString(), Password, file]);
        Assert.True(run.ExitCode == 0, run.ToString() + "\n" + Log);
        using var store = _q.Open();
        var mail = Assert.Single(store.List());
        Assert.Equal(["alice@self.test", "bob@self.test"], mail.GetRecipients());
        Assert.Equal(Convert.ToHexString(Encoding.UTF8.GetBytes(message)), Convert.ToHexString(StoredBody(mail.Id)));
        Assert.Equal("peer", store.ReadEnvelope(mail.Id)!.AuthenticatedUser);
    }

    [PeerFact("smtp-source")]
    public async Task Postfix_smtp_source_load_20_sessions_every_message_queued()
    {
        const int count = 400;
        var run = await Programs.RunAsync(Peers.Require("smtp-source"), ["-s", "20", "-m", count.ToString(), "-l", "4096", "-f", "load@ext.test", "-t", "alice@self.test", $"127.0.0.1:{_port}"],
            timeout: TimeSpan.FromSeconds(120));
        Assert.True(run.ExitCode == 0, run.ToString() + "\n" + Log);
        using var store = _q.Open();
        var queued = store.List();
        Assert.Equal(count, queued.Count);
        Assert.All(queued, m => Assert.InRange(m.Size, 4096, 4096 + 1024));
        Assert.All(queued, m => Assert.Equal("load@ext.test", m.Sender));
        Assert.Equal(count, _q.Files("mess").Length);
    }
}
