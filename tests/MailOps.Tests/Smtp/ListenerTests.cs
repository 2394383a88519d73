using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailOps.Core.Config;
using MailOps.Core.Smtp;
using MimeKit;

namespace MailOps.Tests.Smtp;

/// <summary>The listener on a real loopback socket: caps, timeouts, shutdown, STARTTLS, AUTH, big messages.</summary>
public sealed class ListenerTests : ListenerTestBase
{

    private const string PasswordOfU = "s3cret pass";

    private static void WithTlsAndUser(MailOpsConfig c)
    {
        c.Tls = new TlsSettings { Enabled = true };
        c.Users = [new UserSettings { Name = "u", PasswordHash = PasswordHash.Create(PasswordOfU, iterations: 1000) }];
    }

    [Fact]
    public async Task Connections_beyond_the_per_client_cap_get_421()
    {
        var ep = Start(c => { c.MaxConnectionsPerClient = 2; });
        using var one = new RawSmtpClient(ep);
        using var two = new RawSmtpClient(ep);
        Assert.StartsWith("220 ", await one.ReplyAsync());
        Assert.StartsWith("220 ", await two.ReplyAsync());
        using var three = new RawSmtpClient(ep);
        Assert.StartsWith("421 4.7.0", await three.ReplyAsync());
        Assert.Null(await three.ReplyAsync());
        one.Dispose();
        // A slot frees when a session ends.
        await WaitUntil(() => _listener!.ActiveSessions == 1);
        using var four = new RawSmtpClient(ep);
        Assert.StartsWith("220 ", await four.ReplyAsync());
    }

    [Fact]
    public async Task Connections_beyond_the_global_cap_get_421()
    {
        var ep = Start(c => { c.MaxConnections = 1; });
        using var one = new RawSmtpClient(ep);
        Assert.StartsWith("220 ", await one.ReplyAsync());
        using var two = new RawSmtpClient(ep);
        Assert.StartsWith("421 4.7.0", await two.ReplyAsync());
    }

    [Fact]
    public async Task An_idle_client_is_cut_off_with_421()
    {
        var ep = Start(c => c.IdleTimeout = TimeSpan.FromSeconds(1));
        using var client = new RawSmtpClient(ep);
        Assert.StartsWith("220 ", await client.ReplyAsync());
        Assert.StartsWith("421 4.4.2", await client.ReplyAsync(TimeSpan.FromSeconds(10)));
        Assert.Null(await client.ReplyAsync());
    }

    [Fact]
    public async Task A_client_trickling_a_command_is_cut_off()
    {
        var ep = Start(c => c.IdleTimeout = TimeSpan.FromSeconds(2));
        using var client = new RawSmtpClient(ep);
        Assert.StartsWith("220 ", await client.ReplyAsync());
        var reply = client.ReplyAsync(TimeSpan.FromSeconds(15));
        var started = DateTime.UtcNow;
        foreach (char c in "NOOP padding padding padding\r\n")
        {
            if (reply.IsCompleted) break;
            try { await client.SendAsync(c.ToString()); } catch (IOException) { break; }
            await Task.Delay(300);
        }
        Assert.StartsWith("421 4.4.2", await reply);
        Assert.InRange((DateTime.UtcNow - started).TotalSeconds, 1.5, 8);
    }

    [Fact]
    public async Task A_client_trickling_DATA_is_cut_off_by_the_minimum_rate()
    {
        var ep = Start(c => { c.IdleTimeout = TimeSpan.FromSeconds(2); c.MinDataRate = 100; });
        using var client = new RawSmtpClient(ep);
        await client.ReplyAsync();
        await client.SendAsync("EHLO c\r\nMAIL FROM:<s@ext.test>\r\nRCPT TO:<alice@self.test>\r\nDATA\r\n");
        for (int i = 0; i < 3; i++) await client.ReplyAsync();
        Assert.StartsWith("354", await client.ReplyAsync());
        var reply = client.ReplyAsync(TimeSpan.FromSeconds(20));
        for (int i = 0; i < 40 && !reply.IsCompleted; i++)
        {
            try { await client.SendAsync("x"); } catch (IOException) { break; }
            await Task.Delay(250); // 4 octets a second: never idle, far too slow
        }
        Assert.StartsWith("421 4.4.2", await reply);
        Assert.Empty(_f!.Store.List());
    }

    [Fact]
    public async Task Stopping_finishes_a_message_in_flight_and_tells_idle_sessions_421()
    {
        var ep = Start();
        using var idle = new RawSmtpClient(ep);
        using var busy = new RawSmtpClient(ep);
        await idle.ReplyAsync();
        await busy.ReplyAsync();
        await busy.SendAsync("EHLO c\r\nMAIL FROM:<s@ext.test>\r\nRCPT TO:<alice@self.test>\r\nDATA\r\n");
        for (int i = 0; i < 3; i++) await busy.ReplyAsync();
        Assert.StartsWith("354", await busy.ReplyAsync());
        await busy.SendAsync("Subject: in flight\r\n\r\nfirst half\r\n");

        var stop = _listener!.StopAsync(TimeSpan.FromSeconds(20));
        Assert.StartsWith("421 4.3.2", await idle.ReplyAsync());
        await Task.Delay(200);
        Assert.False(stop.IsCompleted);
        await busy.SendAsync("second half\r\n.\r\n");
        Assert.StartsWith("250 2.0.0 Ok: queued as", await busy.ReplyAsync());
        Assert.StartsWith("421 4.3.2", await busy.ReplyAsync());
        await stop;
        Assert.Same(stop, _listener.StopAsync(TimeSpan.FromSeconds(1))); // idempotent
        Assert.Single(_f!.Store.List());
        Assert.Throws<SocketException>(() => new TcpClient().Connect(ep));
    }

    [Fact]
    public async Task Bytes_pipelined_after_STARTTLS_are_discarded_and_the_session_starts_over()
    {
        var ep = Start(WithTlsAndUser);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(ep);
        var plain = tcp.GetStream();
        var reader = new StreamReader(plain, Encoding.ASCII);
        Assert.StartsWith("220 ", await reader.ReadLineAsync());
        await plain.WriteAsync(Encoding.ASCII.GetBytes("EHLO c\r\n"));
        var ehlo = await ReadReplyAsync(reader);
        Assert.Contains("STARTTLS", ehlo);
        Assert.DoesNotContain("AUTH", ehlo); // not offered in the clear
        // The injection of CVE-2011-0411: commands sent in the clear along with STARTTLS.
        await plain.WriteAsync(Encoding.ASCII.GetBytes("STARTTLS\r\nMAIL FROM:<injected@ext.test>\r\nRCPT TO:<alice@self.test>\r\n"));
        Assert.StartsWith("220 2.0.0", await reader.ReadLineAsync());

        using var tls = new SslStream(plain, false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync("localhost");
        var secure = new StreamReader(tls, Encoding.ASCII);
        // Had the injected commands been kept, MAIL would now be "nested" (503) or RCPT accepted.
        await tls.WriteAsync(Encoding.ASCII.GetBytes("RCPT TO:<alice@self.test>\r\n"));
        Assert.StartsWith("503 5.5.1 Need MAIL", await secure.ReadLineAsync());
        await tls.WriteAsync(Encoding.ASCII.GetBytes("MAIL FROM:<s@ext.test>\r\n"));
        Assert.StartsWith("503 5.5.1 Send HELO/EHLO first", await secure.ReadLineAsync()); // EHLO state was reset too
        await tls.WriteAsync(Encoding.ASCII.GetBytes("EHLO c\r\n"));
        var secureEhlo = await ReadReplyAsync(secure);
        Assert.Contains("AUTH PLAIN LOGIN", secureEhlo);
        Assert.DoesNotContain("STARTTLS", secureEhlo);
    }

    private static async Task<string> ReadReplyAsync(StreamReader reader)
    {
        var sb = new StringBuilder();
        string? line;
        do { line = await reader.ReadLineAsync(); sb.AppendLine(line); } while (line is not null && line.Length > 3 && line[3] == '-');
        return sb.ToString();
    }

    [Fact]
    public async Task MailKit_sends_with_STARTTLS_and_AUTH_and_the_queue_holds_its_bytes_exactly()
    {
        var ep = Start(WithTlsAndUser);
        using var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true, CheckCertificateRevocation = false };
        await client.ConnectAsync("127.0.0.1", ep.Port, SecureSocketOptions.StartTls);
        Assert.True(client.IsSecure);
        Assert.Contains("PLAIN", client.AuthenticationMechanisms);
        await Assert.ThrowsAsync<AuthenticationException>(() => client.AuthenticateAsync("u", "wrong"));
        await client.AuthenticateAsync("u", PasswordOfU);

        var sent = new List<byte[]>();
        for (int i = 0; i < 3; i++)
        {
            var message = new MimeMessage();
            message.From.Add(new MailboxAddress("Sender", "sender@ext.test"));
            message.To.Add(new MailboxAddress("Far Away", $"someone{i}@far.test")); // relayed: allowed after AUTH
            message.Subject = $"MailKit {i} — ünïcödé";
            message.Body = new TextPart("plain") { Text = $".\r\n..leading dots\r\n.x\r\n8-bit: grüße {i}\r\n\r\nlast line\r\n" };
            await client.SendAsync(message);
            using var ms = new MemoryStream();
            await message.WriteToAsync(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, ms);
            sent.Add(ms.ToArray());
        }
        await client.DisconnectAsync(true);

        var queued = _f!.Store.List().OrderBy(m => m.Id).ToList();
        Assert.Equal(3, queued.Count);
        for (int i = 0; i < 3; i++)
        {
            var envelope = _f.Store.ReadEnvelope(queued[i].Id)!;
            Assert.Equal("u", envelope.AuthenticatedUser);
            Assert.Equal($"someone{i}@far.test", Assert.Single(envelope.Recipients).Address);
            using var body = new MemoryStream();
            await using (var stored = _f.Store.OpenBody(queued[i].Id)) await stored.CopyToAsync(body);
            string text = Encoding.UTF8.GetString(body.ToArray());
            Assert.Matches(@"^Received: from \S+ \(unknown \[127\.0\.0\.1\]\)\r\n\t\(using Tls1[23] with cipher \w+\)\r\n\tby mx\.test \(MailOps\) with ESMTPSA id ", text);
            Assert.Equal(Convert.ToHexString(sent[i]), Convert.ToHexString(Encoding.UTF8.GetBytes(SmtpFixture.StripOwnReceived(text))));
        }
    }

    [Fact]
    public async Task A_100_MB_message_streams_into_the_queue_and_one_over_the_limit_is_refused_cleanly()
    {
        var ep = Start(c => c.MaxMessageSize = 101L * 1024 * 1024);
        const int lines = 1_048_576; // 100 octets each: 100 MiB
        byte[] line = Encoding.ASCII.GetBytes(new string('m', 98) + "\r\n");
        async Task<string?> SendAsync(int lineCount)
        {
            using var client = new RawSmtpClient(ep);
            await client.ReplyAsync();
            await client.SendAsync("EHLO c\r\nMAIL FROM:<s@ext.test>\r\nRCPT TO:<alice@self.test>\r\nDATA\r\n");
            for (int i = 0; i < 4; i++) await client.ReplyAsync();
            var block = new byte[line.Length * 1024];
            for (int i = 0; i < 1024; i++) line.CopyTo(block, i * line.Length);
            for (int i = 0; i < lineCount / 1024; i++) await client.SendRawAsync(block);
            await client.SendAsync(".\r\n");
            return await client.ReplyAsync(TimeSpan.FromSeconds(120));
        }
        Assert.StartsWith("250 2.0.0 Ok: queued as", await SendAsync(lines));
        var mail = Assert.Single(_f!.Store.List());
        Assert.InRange(mail.Size, 100L * 1024 * 1024, 100L * 1024 * 1024 + 400);

        Assert.StartsWith("552 5.3.4", await SendAsync(lines + 20 * 1024)); // 102 MiB
        Assert.Single(_f.Store.List());
        Assert.Single(_f.Queue.Files("mess"));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (int i = 0; i < 200 && !condition(); i++) await Task.Delay(25);
        Assert.True(condition());
    }
}
