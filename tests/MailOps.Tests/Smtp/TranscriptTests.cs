using System.Net;
using System.Text;
using MailOps.Core.Queue;

namespace MailOps.Tests.Smtp;

/// <summary>The SMTP dialogue, replayed through a scripted transport into a real queue.</summary>
public sealed class TranscriptTests : IDisposable
{
    private SmtpFixture _f = new();

    public void Dispose() => _f.Dispose();

    private void Reconfigure(Action<MailOps.Core.Config.MailOpsConfig> configure)
    {
        _f.Dispose();
        _f = new SmtpFixture(configure);
    }

    private const string Hello = "EHLO client.test\r\n";
    private const string Mail = "MAIL FROM:<sender@ext.test>\r\n";

    [Theory]
    [InlineData(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n", "220 250 250 250 354 250 221")]
    [InlineData("HELO client.test\r\nQUIT\r\n", "220 250 221")]
    [InlineData("EHLO\r\nHELO\r\nQUIT\r\n", "220 501 501 221")]
    [InlineData(Mail + "QUIT\r\n", "220 503 221")]
    [InlineData(Hello + "RCPT TO:<alice@self.test>\r\nQUIT\r\n", "220 250 503 221")]
    [InlineData(Hello + "DATA\r\n" + Mail + "DATA\r\nQUIT\r\n", "220 250 503 250 554 221")]
    [InlineData(Hello + Mail + Mail + "QUIT\r\n", "220 250 250 503 221")]
    [InlineData(Hello + "VRFY alice\r\nEXPN list\r\nHELP\r\nNOOP\r\nRSET\r\nFOO bar\r\nQUIT\r\n", "220 250 252 502 214 250 250 500 221")]
    [InlineData(Hello + Mail + "RSET\r\nRCPT TO:<alice@self.test>\r\nQUIT\r\n", "220 250 250 250 503 221")]
    [InlineData(Hello + Mail + "RCPT TO:<nobody@self.test>\r\nRCPT TO:<postmaster@self.test>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<alice-lists@self.test>\r\nQUIT\r\n", "220 250 250 550 250 250 250 221")]
    [InlineData(Hello + "MAIL FROM:<sender@ext.test> SIZE=99999999999\r\nMAIL FROM:<sender@ext.test> FOO=bar\r\nMAIL FROM:<sender@ext.test> SIZE=12x\r\nMAIL FROM:<> BODY=8BITMIME SIZE=100\r\nQUIT\r\n", "220 250 552 555 501 250 221")]
    [InlineData(Hello + Mail + "RCPT TO:<ü@self.test>\r\nQUIT\r\n", "220 250 250 553 221")]
    [InlineData(Hello + "MAIL FROM:<sender@ext.test> SMTPUTF8\r\nRCPT TO:<ü@self.test>\r\nQUIT\r\n", "220 250 250 550 221")]
    [InlineData(Hello + "MAIL FROM:<bad address>\r\nMAIL FROM:sender@ext.test\r\nQUIT\r\n", "220 250 501 501 221")]
    [InlineData(Hello + "AUTH PLAIN AGFAYg==\r\nSTARTTLS\r\nQUIT\r\n", "220 250 538 454 221")]
    public async Task Replies_follow_RFC_5321(string input, string expected)
    {
        Assert.Equal(expected, string.Join(' ', await _f.CodesAsync(input)));
    }

    [Theory]
    [InlineData("someone@ext.test")]
    [InlineData("u%ext.test@self.test")]
    [InlineData("\"u@ext.test\"@self.test")]
    [InlineData("@self.test:u@ext.test")]
    [InlineData("@self.test,@other.test:u@ext.test")]
    [InlineData("ext.test!u@self.test")]
    public async Task Relay_forms_are_refused_without_AUTH_or_a_relay_client(string recipient)
    {
        string output = await _f.RunAsync(Hello + Mail + $"RCPT TO:<{recipient}>\r\nQUIT\r\n");
        Assert.Contains("554 5.7.1", output);
        Assert.Equal("220 250 250 554 221", string.Join(' ', SmtpFixture.Codes(output)));
    }

    [Fact]
    public async Task Relay_clients_and_relay_domains_may_relay()
    {
        Reconfigure(c => { c.RelayClients = ["192.0.2.0/24"]; c.RelayDomains = ["partner.test"]; });
        Assert.Equal("220 250 250 250 221", string.Join(' ', await _f.CodesAsync(Hello + Mail + "RCPT TO:<x@ext.test>\r\nQUIT\r\n", IPAddress.Parse("192.0.2.10"))));
        Assert.Equal("220 250 250 554 250 221", string.Join(' ', await _f.CodesAsync(Hello + Mail + "RCPT TO:<x@ext.test>\r\nRCPT TO:<x@partner.test>\r\nQUIT\r\n", IPAddress.Parse("198.51.100.1"))));
    }

    [Fact]
    public async Task Command_lines_over_512_octets_are_refused_and_the_session_goes_on()
    {
        var codes = await _f.CodesAsync(Hello + "NOOP " + new string('x', 600) + "\r\nNOOP\r\nMAIL FROM:<" + new string('a', 520) + "@ext.test>\r\nQUIT\r\n");
        Assert.Equal("220 250 500 250 500 221", string.Join(' ', codes));
        var exactly512 = "NOOP " + new string('x', 512 - 7) + "\r\n";
        Assert.Equal(512, exactly512.Length);
        Assert.Equal("220 250 250 221", string.Join(' ', await _f.CodesAsync(Hello + exactly512 + "QUIT\r\n")));
    }

    [Theory]
    [InlineData("NOOP\nNOOP\r\nQUIT\r\n")]
    [InlineData("NOOP\rNOOP\r\nQUIT\r\n")]
    public async Task A_bare_CR_or_LF_in_a_command_is_refused(string input)
    {
        var output = await _f.RunAsync(Hello + input);
        Assert.Contains("500 5.5.2 Syntax error: bare", output);
        Assert.Equal(input.Contains('\n') && !input.StartsWith("NOOP\r") ? "220 250 500 250 221" : "220 250 500 221", string.Join(' ', SmtpFixture.Codes(output)));
    }

    public static TheoryData<string> SmugglingSequences => new() { "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\r\n.\r\n", "\r\n\r.\r\n" };

    [Theory]
    [MemberData(nameof(SmugglingSequences))]
    public async Task Only_CRLF_dot_CRLF_ends_DATA_so_nothing_can_be_smuggled(string sequence)
    {
        string smuggled = "MAIL FROM:<admin@self.test>\r\nRCPT TO:<bob@self.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nspoofed\r\n.\r\n";
        string input = Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\nSubject: first\r\n\r\nhello" + sequence + smuggled + "QUIT\r\n";
        string output = await _f.RunAsync(input);
        // Refused at the bare CR/LF, and the connection closed: no command after it was read.
        Assert.Equal("220 250 250 250 354 521", string.Join(' ', SmtpFixture.Codes(output)));
        Assert.Empty(_f.Store.List());
        Assert.Empty(_f.Queue.Files("mess"));
    }

    [Fact]
    public async Task Dot_stuffing_is_removed_exactly()
    {
        string output = await _f.RunAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\nSubject: dots\r\n\r\n..\r\n...x\r\n..x\r\n. x\r\nx.\r\n....\r\n.\r\nQUIT\r\n");
        Assert.Contains("250 2.0.0 Ok: queued as ", output);
        var (envelope, body) = Assert.Single(_f.Messages());
        Assert.Equal("Subject: dots\r\n\r\n.\r\n..x\r\n.x\r\n x\r\nx.\r\n...\r\n", body);
        Assert.Equal("sender@ext.test", envelope.Sender);
        Assert.Equal("alice@self.test", Assert.Single(envelope.Recipients).Address);
        Assert.Equal(MessageOrigin.Smtp, envelope.Origin);
        Assert.Equal("192.0.2.10", envelope.ClientAddress);
        Assert.Equal("client.test", envelope.ClientHelo);
    }

    [Fact]
    public async Task Every_message_gets_a_Received_header_naming_client_server_and_id()
    {
        string output = await _f.RunAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\nSubject: r\r\n\r\nx\r\n.\r\nQUIT\r\n");
        string id = output[(output.IndexOf("queued as ", StringComparison.Ordinal) + 10)..].Split("\r\n")[0];
        using var body = new StreamReader(_f.Store.OpenBody(id));
        string text = body.ReadToEnd();
        Assert.Matches(@"^Received: from client\.test \(unknown \[192\.0\.2\.10\]\)\r\n\tby mx\.test \(MailOps\) with ESMTP id " + id + @"\r\n\tfor <alice@self\.test>; \w{3}, \d", text);
    }

    [Fact]
    public async Task A_text_line_over_1000_octets_is_refused_after_the_end_of_data()
    {
        string line = new('y', 999); // 1001 with CRLF
        var codes = await _f.CodesAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\n" + line + "\r\n.\r\nNOOP\r\nQUIT\r\n");
        Assert.Equal("220 250 250 250 354 554 250 221", string.Join(' ', codes));
        Assert.Empty(_f.Store.List());
        string ok = new('y', 998);
        Assert.Equal("220 250 250 250 354 250 221", string.Join(' ', await _f.CodesAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\n" + ok + "\r\n.\r\nQUIT\r\n")));
    }

    [Fact]
    public async Task A_message_over_the_size_limit_is_read_to_the_end_then_refused_552()
    {
        Reconfigure(c => c.MaxMessageSize = 2000);
        string big = string.Concat(Enumerable.Repeat(new string('z', 98) + "\r\n", 30)); // 3000 octets
        string output = await _f.RunAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\n" + big + ".\r\nNOOP\r\nQUIT\r\n");
        Assert.Contains("552 5.3.4", output);
        Assert.Equal("220 250 250 250 354 552 250 221", string.Join(' ', SmtpFixture.Codes(output)));
        Assert.Empty(_f.Store.List());
        Assert.Empty(_f.Queue.Files("mess"));
    }

    [Theory]
    [InlineData(100, "250")]
    [InlineData(101, "554")]
    public async Task More_than_100_Received_headers_is_a_loop(int hops, string code)
    {
        var header = string.Concat(Enumerable.Range(0, hops).Select(i => $"Received: from hop{i}.test by hop{i + 1}.test; Sun, 22 Nov 2026 10:00:00 +0000\r\n"));
        var codes = await _f.CodesAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\n" + header + "Subject: loop\r\n\r\nx\r\n.\r\nQUIT\r\n");
        Assert.Equal(code, codes[^2]);
    }

    [Fact]
    public async Task Recipients_beyond_the_limit_get_452()
    {
        Reconfigure(c => { c.MaxRecipients = 2; c.Mailboxes = ["*@self.test"]; });
        var codes = await _f.CodesAsync(Hello + Mail + "RCPT TO:<a@self.test>\r\nRCPT TO:<b@self.test>\r\nRCPT TO:<c@self.test>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n");
        Assert.Equal("220 250 250 250 250 452 354 250 221", string.Join(' ', codes));
        Assert.Equal(2, Assert.Single(_f.Messages()).Envelope.Recipients.Count);
    }

    [Fact]
    public async Task DSN_parameters_are_kept_in_the_envelope()
    {
        await _f.RunAsync(Hello + "MAIL FROM:<sender@ext.test> RET=HDRS ENVID=abc+2Bdef BODY=8BITMIME\r\n"
            + "RCPT TO:<alice@self.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40self.test\r\nRCPT TO:<bob@self.test> NOTIFY=NEVER\r\n"
            + "DATA\r\nSubject: dsn\r\n\r\nx\r\n.\r\nQUIT\r\n");
        var envelope = Assert.Single(_f.Messages()).Envelope;
        Assert.Equal(DsnReturn.Headers, envelope.Return);
        Assert.Equal("abc+def", envelope.EnvelopeId);
        Assert.True(envelope.EightBit);
        Assert.Equal(DsnNotify.Success | DsnNotify.Failure, envelope.Recipients[0].Notify);
        Assert.Equal("rfc822;alice@self.test", envelope.Recipients[0].OriginalRecipient);
        Assert.Equal(DsnNotify.Never, envelope.Recipients[1].Notify);
        Assert.Equal("dsn", envelope.Subject);
    }

    [Fact]
    public async Task HoldIncoming_queues_everything_as_held()
    {
        Reconfigure(c => c.HoldIncoming = true);
        await _f.RunAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n");
        Assert.Equal(MessageState.Held, Assert.Single(_f.Store.List()).Kind);
    }

    [Fact]
    public async Task BDAT_chunks_are_joined_without_unstuffing()
    {
        string part1 = "Subject: chunks\r\n\r\n.line one\r\n", part2 = ".\r\nend\r\n";
        var output = await _f.RunAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\n"
            + $"BDAT {part1.Length}\r\n{part1}BDAT {part2.Length} LAST\r\n{part2}QUIT\r\n");
        Assert.Equal("220 250 250 250 250 250 221", string.Join(' ', SmtpFixture.Codes(output)));
        Assert.Equal(part1 + part2, Assert.Single(_f.Messages()).Body);
    }

    [Fact]
    public async Task BDAT_refused_chunks_are_still_read_so_the_session_stays_in_step()
    {
        // No transaction: the 7 octets "NOOP\r\nX" are skipped, not taken as a command; "NOOP" after them is one.
        var codes = await _f.CodesAsync(Hello + "BDAT 7 LAST\r\nNOOP\r\nXNOOP\r\nQUIT\r\n");
        Assert.Equal("220 250 503 250 221", string.Join(' ', codes));
        // A bare LF in a chunk fails the transaction; the next chunk is discarded; RSET starts over.
        codes = await _f.CodesAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nBDAT 5\r\nab\ncdBDAT 3 LAST\r\nx\r\nRSET\r\nQUIT\r\n");
        Assert.Equal("220 250 250 250 554 503 250 221", string.Join(' ', codes));
        Assert.Empty(_f.Store.List());
        Assert.Equal("220 250 250 250 250 503 221", string.Join(' ', await _f.CodesAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nBDAT 4\r\nab\r\nDATA\r\nQUIT\r\n")));
    }

    [Fact]
    public async Task A_transient_queue_failure_answers_451_and_nothing_is_half_queued()
    {
        Directory.Delete(Path.Combine(_f.Queue.QueuePath, "mess"), recursive: true);
        var codes = await _f.CodesAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\nNOOP\r\nQUIT\r\n");
        Assert.Equal("220 250 250 250 451 250 221", string.Join(' ', codes));
        Directory.CreateDirectory(Path.Combine(_f.Queue.QueuePath, "mess"));
        Directory.Delete(Path.Combine(_f.Queue.QueuePath, "tmp"), recursive: true);
        codes = await _f.CodesAsync(Hello + Mail + "RCPT TO:<alice@self.test>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n");
        Assert.Equal("220 250 250 250 354 451 221", string.Join(' ', codes));
        Assert.Empty(_f.Store.List());
        Assert.Empty(_f.Queue.Files("mess"));
    }

    /// <summary>
    /// RFC 2920: one pipelined write, split into two reads at every possible octet (and once into
    /// single octets), gives the same replies in the same order and the same queued message.
    /// </summary>
    [Fact]
    public async Task Pipelined_input_split_at_every_byte_boundary_gives_the_same_dialogue()
    {
        string input = "EHLO client.test\r\nMAIL FROM:<sender@ext.test>\r\nRCPT TO:<alice@self.test>\r\nRCPT TO:<nobody@self.test>\r\n"
                     + "RCPT TO:<bob@self.test>\r\nDATA\r\nSubject: split\r\n\r\n..\r\n.x\r\nend\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n";
        byte[] bytes = Encoding.ASCII.GetBytes(input);
        string Normalize(string output) => System.Text.RegularExpressions.Regex.Replace(output, "queued as [0-9a-z]{16}", "queued as ID");

        string expected = Normalize(await _f.RunAsync([bytes]));
        Assert.Equal("220 250 250 250 550 250 354 250 250 250 221", string.Join(' ', SmtpFixture.Codes(expected)));

        var splits = Enumerable.Range(1, bytes.Length - 1).Select(k => new[] { bytes[..k], bytes[k..] })
            .Append(bytes.Select(b => new[] { b }).ToArray());
        int sessions = 1;
        foreach (var pieces in splits)
        {
            Assert.Equal(expected, Normalize(await _f.RunAsync(pieces)));
            sessions++;
        }
        var messages = _f.Messages();
        Assert.Equal(sessions, messages.Count);
        Assert.All(messages, m => Assert.Equal("Subject: split\r\n\r\n.\r\nx\r\nend\r\n", m.Body));
        Assert.All(messages, m => Assert.Equal(["alice@self.test", "bob@self.test"], m.Envelope.Recipients.Select(r => r.Address)));
    }
}
