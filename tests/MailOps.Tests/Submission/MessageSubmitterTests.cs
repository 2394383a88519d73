using System.Text;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.Tests.Submission;

public class MessageSubmitterTests : IDisposable
{
    private readonly TempQueue _q = new();
    private readonly QueueStore _store;

    public MessageSubmitterTests() => _store = _q.Open();

    public void Dispose()
    {
        _store.Dispose();
        _q.Dispose();
    }

    private SubmissionRequest Request(bool t = false, bool dotEnds = false, string? sender = "alice@example.com", params string[] rcpts) => new()
    {
        Sender = sender,
        Recipients = rcpts,
        RecipientsFromHeaders = t,
        DotEndsInput = dotEnds,
        HostName = "mx.example.com",
        DefaultDomain = "example.com",
        UserName = "www-data",
        MaxMessageSize = 1024 * 1024,
    };

    private async Task<(Envelope Envelope, string Body)> Submit(string input, SubmissionRequest request)
    {
        string id = await MessageSubmitter.SubmitAsync(_store, new MemoryStream(Encoding.UTF8.GetBytes(input)), request);
        using var reader = new StreamReader(_store.OpenBody(id), Encoding.UTF8);
        return (_store.ReadEnvelope(id)!, await reader.ReadToEndAsync());
    }

    private async Task<SubmissionException> Refused(string input, SubmissionRequest request)
    {
        var ex = await Assert.ThrowsAsync<SubmissionException>(() => MessageSubmitter.SubmitAsync(_store, new MemoryStream(Encoding.UTF8.GetBytes(input)), request));
        Assert.Empty(_store.List());
        Assert.Empty(_q.Files("mess"));
        Assert.Empty(_q.Files("tmp"));
        return ex;
    }

    [Fact]
    public async Task Php_mail_style_input_is_completed_and_stored_with_crlf()
    {
        // What PHP's mail() pipes into "sendmail -t -i".
        var (envelope, body) = await Submit("To: bob@example.org\nSubject: Contact form\nX-Mailer: PHP/8.2\n\nHello\nBye\n", Request(t: true, sender: null));

        Assert.Equal("www-data@example.com", envelope.Sender);
        Assert.Equal(["bob@example.org"], envelope.Recipients.Select(r => r.Address));
        Assert.Equal("Contact form", envelope.Subject);
        Assert.DoesNotContain("\n", body.Replace("\r\n", ""));
        Assert.StartsWith("Received: by mx.example.com (MailOps, from userid www-data)\r\n\tid " + envelope.Id, body);
        Assert.Contains("\r\nTo: bob@example.org\r\nSubject: Contact form\r\nX-Mailer: PHP/8.2\r\n", body);
        Assert.Contains("\r\nFrom: www-data@example.com\r\n", body);
        Assert.Contains("\r\nDate: ", body);
        Assert.Contains($"\r\nMessage-ID: <{envelope.Id}@mx.example.com>\r\n", body);
        Assert.EndsWith("\r\n\r\nHello\r\nBye\r\n", body);
        Assert.Equal($"<{envelope.Id}@mx.example.com>", envelope.MessageId);
        Assert.Equal(Encoding.UTF8.GetByteCount(body), envelope.Size);
    }

    [Fact]
    public async Task Recipients_from_headers_include_cc_and_bcc_and_bcc_is_removed()
    {
        var (envelope, body) = await Submit(
            "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>, carol@example.net\r\nCc: undisclosed-recipients:;\r\n" +
            "Bcc: secret@example.org,\r\n bob@example.org\r\nSubject: x\r\n\r\nbody\r\n",
            Request(true, false, "alice@example.com", "extra@example.org"));

        Assert.Equal(["extra@example.org", "bob@example.org", "carol@example.net", "secret@example.org"], envelope.Recipients.Select(r => r.Address));
        Assert.DoesNotContain("Bcc", body, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("secret", body);
        Assert.Contains("From: Alice <alice@example.com>\r\n", body);
        Assert.Single(body.Split("\r\nFrom:")[1..]); // the existing From is kept, none added
    }

    [Fact]
    public async Task Existing_date_and_message_id_are_kept()
    {
        var (envelope, body) = await Submit("Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <keep@x>\nFrom: a@b.example\n\nx\n", Request(rcpts: "bob@example.org"));
        Assert.Equal("<keep@x>", envelope.MessageId);
        Assert.Single(body.Split("Date:")[1..]);
        Assert.Single(body.Split("Message-ID:")[1..]);
    }

    [Theory]
    [InlineData(true, "Subject: x\n\nline1\n.\nline2\n", "line1\r\n")]
    [InlineData(false, "Subject: x\n\nline1\n.\nline2\n", "line1\r\n.\r\nline2\r\n")]
    [InlineData(true, "Subject: x\n\nline1\n..\n.x\n", "line1\r\n..\r\n.x\r\n")]
    [InlineData(true, "Subject: x\r\n\r\nline1\r\n.\r\nline2\r\n", "line1\r\n")]
    [InlineData(false, "Subject: x\n\nno final newline", "no final newline\r\n")]
    [InlineData(false, "Subject: x\n", "")]
    [InlineData(false, "Subject: x\n\nbare\rcr kept\n", "bare\rcr kept\r\n")]
    public async Task Body_line_ends_and_the_sendmail_dot(bool dotEnds, string input, string expectedBody)
    {
        var (_, body) = await Submit(input, Request(dotEnds: dotEnds, rcpts: "bob@example.org"));
        Assert.Equal(expectedBody, body[(body.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]);
    }

    [Fact]
    public async Task Long_lines_and_eight_bit_bodies_pass_through()
    {
        string longLine = new string('x', 200_000);
        var (envelope, body) = await Submit($"Subject: x\n\n{longLine}\nGrüße\n", Request(rcpts: "bob@example.org"));
        Assert.EndsWith($"\r\n\r\n{longLine}\r\nGrüße\r\n", body);
        Assert.True(envelope.EightBit);
    }

    [Fact]
    public async Task Bare_names_are_completed_with_the_default_domain_and_null_sender_is_kept()
    {
        var (envelope, body) = await Submit("Subject: cron\n\nout\n", Request(sender: "<>", rcpts: "root"));
        Assert.Equal("", envelope.Sender);
        Assert.Equal(["root@example.com"], envelope.Recipients.Select(r => r.Address));
        Assert.Contains("From: MAILER-DAEMON@example.com\r\n", body);
    }

    [Fact]
    public async Task An_mbox_from_line_is_dropped()
    {
        var (_, body) = await Submit("From alice Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n", Request(rcpts: "bob@example.org"));
        Assert.DoesNotContain("From alice", body);
        Assert.Contains("Subject: x\r\n", body);
    }

    [Fact]
    public async Task Empty_input_is_a_bad_message()
    {
        var ex = await Refused("", Request(rcpts: "bob@example.org"));
        Assert.Equal(SubmissionErrorKind.BadMessage, ex.Kind);
        Assert.Contains("Empty input", ex.Message);
    }

    [Theory]
    [InlineData("hello world\n\nbody\n", "Line 1 is not a header field")]
    [InlineData("Subject: x\nthis is not a header\n\nbody\n", "Line 2 is not a header field")]
    [InlineData(" folded first line\n\n", "continuation")]
    [InlineData("Subject: a\0b\n\n", "NUL")]
    public async Task Input_that_is_not_an_rfc5322_message_is_refused(string input, string reason)
    {
        var ex = await Refused(input, Request(rcpts: "bob@example.org"));
        Assert.Equal(SubmissionErrorKind.BadMessage, ex.Kind);
        Assert.Contains(reason, ex.Message);
    }

    [Fact]
    public async Task No_recipients_is_a_usage_error()
    {
        var ex = await Refused("Subject: x\n\nbody\n", Request());
        Assert.Equal(SubmissionErrorKind.Usage, ex.Kind);
        ex = await Refused("Subject: x\n\nbody\n", Request(t: true));
        Assert.Equal(SubmissionErrorKind.Usage, ex.Kind);
        Assert.Contains("To:", ex.Message);
    }

    [Theory]
    [InlineData("bob@@example.org")]
    [InlineData("bob@example..org")]
    [InlineData("bob smith@example.org")]
    [InlineData("bob@-example.org")]
    public async Task A_malformed_recipient_argument_is_a_usage_error(string rcpt)
    {
        var ex = await Refused("Subject: x\n\nbody\n", Request(rcpts: rcpt));
        Assert.Equal(SubmissionErrorKind.Usage, ex.Kind);
        Assert.Contains(rcpt, ex.Message);
    }

    [Fact]
    public async Task A_malformed_header_address_with_t_is_a_bad_message()
    {
        var ex = await Refused("To: bob@exa mple..org\n\nbody\n", Request(t: true));
        Assert.Equal(SubmissionErrorKind.BadMessage, ex.Kind);
    }

    [Fact]
    public async Task A_message_over_the_size_limit_is_refused_and_leaves_nothing()
    {
        var ex = await Refused("Subject: big\n\n" + new string('x', 2 * 1024 * 1024) + "\n", Request(rcpts: "bob@example.org"));
        Assert.Equal(SubmissionErrorKind.BadMessage, ex.Kind);
        Assert.Contains("limit", ex.Message);
    }
}
