using System.Net;
using System.Net.Sockets;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailOps.Core.Config;
using MailOps.Core.Smtp;

namespace MailOps.Tests.Smtp;

/// <summary>The listener under hostile clients: sessions that never read, AUTH guessing, shared ports, odd lines and addresses.</summary>
public sealed class HardeningTests : ListenerTestBase
{

    [Fact]
    public async Task A_998_octet_line_that_starts_with_a_dot_is_accepted_in_DATA()
    {
        using var f = new SmtpFixture();
        string stored = "." + new string('x', 997); // 998 octets as stored: the longest legal line
        var codes = await f.CodesAsync($"EHLO c\r\nMAIL FROM:<s@ext.test>\r\nRCPT TO:<alice@self.test>\r\nDATA\r\nSubject: dots\r\n\r\n.{stored}\r\n.\r\nQUIT\r\n");
        Assert.Equal(["220", "250", "250", "250", "354", "250", "221"], codes);
        Assert.Contains("\r\n" + stored + "\r\n", f.Messages().Single().Body);
        // One more octet is over the limit, dot or not.
        using var g = new SmtpFixture();
        codes = await g.CodesAsync($"EHLO c\r\nMAIL FROM:<s@ext.test>\r\nRCPT TO:<alice@self.test>\r\nDATA\r\n\r\n.{stored}x\r\n.\r\nQUIT\r\n");
        Assert.Equal("554", codes[5]);
    }

    [Fact]
    public async Task A_port_in_use_cannot_be_listened_on_a_second_time()
    {
        var ep = Start();
        using var other = new SmtpFixture();
        var second = new SmtpListener(other.Context, [ep]);
        var ex = Assert.Throws<SmtpListenerException>(second.Start);
        Assert.Contains(ep.Port.ToString(), ex.Message);
        await second.DisposeAsync();
        // And the first one still gets every connection.
        using var client = new RawSmtpClient(ep);
        Assert.StartsWith("220 ", await client.ReplyAsync());
    }

    [Fact]
    public async Task Clients_that_pipeline_and_never_read_are_cut_off_by_the_timeouts()
    {
        var ep = Start(c =>
        {
            c.IdleTimeout = TimeSpan.FromSeconds(1);
            c.SessionTimeout = TimeSpan.FromSeconds(3);
            c.MaxConnectionsPerClient = 3;
        });
        var flooders = Enumerable.Range(0, 3).Select(_ => Task.Run(() => FloodWithoutReading(ep, TimeSpan.FromSeconds(12), 25L << 20))).ToArray();
        var started = DateTime.UtcNow;
        await Task.Delay(500);
        Assert.True(_listener!.ActiveSessions > 0);
        // Every session must be gone well before the flooders give up.
        while (_listener.ActiveSessions > 0 && DateTime.UtcNow - started < TimeSpan.FromSeconds(11)) await Task.Delay(100);
        Assert.Equal(0, _listener.ActiveSessions);
        // A legitimate client from the same address is served.
        using var client = new RawSmtpClient(ep);
        Assert.StartsWith("220 ", await client.ReplyAsync());
        await Task.WhenAll(flooders);
    }

    /// <summary>Writes pipelined NOOPs for at most <paramref name="limit"/> or <paramref name="maxOctets"/>, never reading.</summary>
    private static async Task FloodWithoutReading(IPEndPoint ep, TimeSpan limit, long maxOctets)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.ReceiveBufferSize = 4096;
        await socket.ConnectAsync(ep);
        var chunk = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("NOOP\r\n", 1000)));
        using var cts = new CancellationTokenSource(limit);
        long sent = 0;
        try
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes("EHLO flood\r\n"), SocketFlags.None, cts.Token);
            while (sent < maxOctets) sent += await socket.SendAsync(chunk, SocketFlags.None, cts.Token);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Cut off by the server (or out of time): what the test measures from the server's side.
        }
    }

    private const string Password = "right horse battery";

    private static void WithAuth(MailOpsConfig c)
    {
        c.Tls = new TlsSettings { Enabled = true };
        c.Users = [new UserSettings { Name = "u", PasswordHash = PasswordHash.Create(Password, iterations: 1000) }];
        c.AuthFailureDelay = TimeSpan.FromMilliseconds(300);
        c.AuthFailureLimit = 5; // MailKit tries PLAIN, then LOGIN: two failures per AuthenticateAsync
    }

    private static async Task<SmtpClient> ConnectAsync(IPEndPoint ep, string from)
    {
        var client = new SmtpClient { LocalEndPoint = new IPEndPoint(IPAddress.Parse(from), 0), ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync(ep.Address.ToString(), ep.Port, SecureSocketOptions.StartTls);
        return client;
    }

    [Fact]
    public async Task Failed_AUTH_is_slowed_down_and_locked_out_per_client_address()
    {
        var ep = Start(WithAuth);
        using var guesser = await ConnectAsync(ep, "127.0.0.1");
        var started = DateTime.UtcNow;
        await Assert.ThrowsAsync<AuthenticationException>(() => guesser.AuthenticateAsync("u", "guess 1"));
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(250), "a failed AUTH is answered only after the failure delay");
        await Assert.ThrowsAsync<AuthenticationException>(() => guesser.AuthenticateAsync("u", "guess 2"));
        // The fifth failure reaches the limit: 421 and the connection is closed.
        var third = await Assert.ThrowsAnyAsync<Exception>(() => guesser.AuthenticateAsync("u", "guess 3"));
        Assert.Contains("Too many failed authentications", third.Message);

        // From that address even the right password is refused for now...
        using var again = await ConnectAsync(ep, "127.0.0.1");
        var locked = await Assert.ThrowsAnyAsync<Exception>(() => again.AuthenticateAsync("u", Password));
        Assert.Contains("Too many failed authentications", locked.Message);
        // ...while another address is not affected.
        using var other = await ConnectAsync(ep, "127.0.0.2");
        await other.AuthenticateAsync("u", Password);
        Assert.True(other.IsAuthenticated);
    }

    [Fact]
    public void The_guard_keys_IPv6_clients_by_their_64_bit_prefix()
    {
        Assert.Equal(AuthGuard.Key(IPAddress.Parse("2001:db8:1:2::1")), AuthGuard.Key(IPAddress.Parse("2001:db8:1:2:ffff::9")));
        Assert.NotEqual(AuthGuard.Key(IPAddress.Parse("2001:db8:1:2::1")), AuthGuard.Key(IPAddress.Parse("2001:db8:1:3::1")));
        Assert.NotEqual(AuthGuard.Key(IPAddress.Parse("192.0.2.1")), AuthGuard.Key(IPAddress.Parse("192.0.2.2")));
        Assert.Equal(AuthGuard.Key(IPAddress.Parse("192.0.2.1")), AuthGuard.Key(IPAddress.Parse("::ffff:192.0.2.1")));
    }

    [Theory]
    [InlineData("<a/b@self.test>")]
    [InlineData("<\"../../etc\"@self.test>")]
    [InlineData("<\"..\\\\x\"@self.test>")]
    public async Task Local_parts_that_cannot_name_a_mailbox_are_refused_at_RCPT(string recipient)
    {
        using var f = new SmtpFixture(c => c.Mailboxes = ["*@self.test"]);
        var output = await f.RunAsync($"EHLO c\r\nMAIL FROM:<s@ext.test>\r\nRCPT TO:{recipient}\r\nRCPT TO:<fine@self.test>\r\nQUIT\r\n");
        var codes = SmtpFixture.Codes(output);
        Assert.Equal(["220", "250", "250", "550", "250", "221"], codes);
        Assert.Contains("550 5.1.3", output);
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("/abs")]
    [InlineData("..")]
    [InlineData("a/../../b")]
    [InlineData("a\\b")]
    public void VirtualDomains_targets_outside_the_maildir_root_are_refused_when_the_configuration_loads(string folder)
    {
        var config = new MailOpsConfig { VirtualDomains = new(StringComparer.OrdinalIgnoreCase) { ["v.test"] = folder } };
        var ex = Assert.Throws<ConfigException>(() => config.Validate());
        Assert.Contains("VirtualDomains", ex.Message);
        config.VirtualDomains["v.test"] = "virtual/v.test";
        config.Validate();
    }
}
