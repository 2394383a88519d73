using System.Diagnostics;
using System.Text.Json;
using MailOps.Core.Queue;

namespace MailOps.Tests.Cli;

/// <summary>The built mailops binary, and the same binary under the name sendmail, run as a user would.</summary>
public class CliEndToEndTests : IDisposable
{
    private readonly TempQueue _q = new();
    public CliEndToEndTests() => _q.Open().Dispose(); // the queue a server made
    public void Dispose() => _q.Dispose();

    private Task<ProcessResult> Mailops(string? stdin, params string[] args) => Programs.MailopsAsync(stdin, [.. args, "--queue", _q.QueuePath]);

    private string SendmailLink()
    {
        string link = Path.Combine(_q.Root, "bin", "sendmail");
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        if (!File.Exists(link)) File.CreateSymbolicLink(link, Programs.Mailops);
        return link;
    }

    private Task<ProcessResult> Sendmail(string stdin, params string[] args) =>
        Programs.RunAsync(SendmailLink(), args, stdin, new Dictionary<string, string?> { ["MAILOPS_QUEUE"] = _q.QueuePath });

    [Fact]
    public async Task Submit_list_trace_hold_release_remove()
    {
        var submit = await Mailops("Subject: Quarterly report\nTo: bob@example.org\n\nNumbers.\n", "submit", "-f", "alice@example.com", "bob@example.org", "carol@example.net");
        Assert.Equal(0, submit.ExitCode);
        string id = submit.Stdout.Trim();
        Assert.True(QueueId.IsValid(id), submit.ToString());

        var list = await Mailops(null, "queue", "--json");
        Assert.Equal(0, list.ExitCode);
        var entry = Assert.Single(JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray());
        Assert.Equal(id, entry.GetProperty("id").GetString());
        Assert.Equal("Queued", entry.GetProperty("state").GetString());
        Assert.Equal("alice@example.com", entry.GetProperty("sender").GetString());
        Assert.Equal("Quarterly report", entry.GetProperty("subject").GetString());
        Assert.Equal(["bob@example.org", "carol@example.net"],
            entry.GetProperty("recipients").EnumerateArray().Select(r => r.GetProperty("address").GetString()));

        var table = await Mailops(null, "queue");
        Assert.Contains(id, table.Stdout);
        Assert.Contains("-- 1 message", table.Stdout);

        Assert.Equal(0, (await Mailops(null, "hold", id)).ExitCode);
        var held = await Mailops(null, "queue", "--json", "--state", "held");
        Assert.Equal(id, Assert.Single(JsonDocument.Parse(held.Stdout).RootElement.EnumerateArray()).GetProperty("id").GetString());
        Assert.Empty(JsonDocument.Parse((await Mailops(null, "queue", "--json", "--state", "Queued")).Stdout).RootElement.EnumerateArray());

        Assert.Equal(0, (await Mailops(null, "release", id)).ExitCode);
        Assert.Equal(0, (await Mailops(null, "remove", id)).ExitCode);
        Assert.Equal("[]", (await Mailops(null, "queue", "--json")).Stdout.Trim());

        var trace = await Mailops(null, "trace", id, "--json");
        Assert.Equal(0, trace.ExitCode);
        var events = JsonDocument.Parse(trace.Stdout).RootElement.EnumerateArray().Select(e => e.GetProperty("event").GetString()).ToList();
        Assert.Equal(["Received", "Queued", "Held", "Held", "Released", "Released", "Removed"], events);

        // By Message-ID, as a user who only has the message in hand would.
        using var store = _q.Open();
        string messageId = store.ReadJournal(id)[0].MessageId!;
        var byMessageId = await Mailops(null, "trace", messageId);
        Assert.Equal(0, byMessageId.ExitCode);
        Assert.Contains($"Trace of {id}", byMessageId.Stdout);
    }

    [Fact]
    public async Task Hold_and_release_all_change_every_queued_message()
    {
        for (int i = 0; i < 3; i++)
            Assert.Equal(0, (await Mailops($"Subject: {i}\n\nbody\n", "submit", "-f", "alice@example.com", $"bob{i}@example.org")).ExitCode);

        var hold = await Mailops(null, "hold", "--all");
        Assert.Equal(0, hold.ExitCode);
        Assert.Equal("3 messages held", hold.Stdout.Trim());
        Assert.Equal(3, JsonDocument.Parse((await Mailops(null, "queue", "--json", "--state", "held")).Stdout).RootElement.GetArrayLength());

        var release = await Mailops(null, "release", "--all");
        Assert.Equal("3 messages released", release.Stdout.Trim());
        Assert.Equal(3, JsonDocument.Parse((await Mailops(null, "queue", "--json", "--state", "queued")).Stdout).RootElement.GetArrayLength());
        Assert.Equal("0 messages released", (await Mailops(null, "release", "--all")).Stdout.Trim());

        var both = await Mailops(null, "hold", "--all", "0000000000000000");
        Assert.Equal(64, both.ExitCode);
        Assert.Contains("ids or --all", both.Stderr);
        Assert.Equal(64, (await Mailops(null, "remove", "--all")).ExitCode); // removing everything takes the ids
    }

    [Fact]
    public async Task Trace_by_message_id_shows_every_queued_copy_under_its_own_id()
    {
        // The same message submitted twice (a script retried): one Message-ID, two queue ids.
        const string message = "Message-ID: <retry@example.com>\nSubject: retried\n\nbody\n";
        string first = (await Mailops(message, "submit", "bob@example.org")).Stdout.Trim();
        string second = (await Mailops(message, "submit", "bob@example.org")).Stdout.Trim();

        var trace = await Mailops(null, "trace", "<retry@example.com>", "--json");
        Assert.Equal(0, trace.ExitCode);
        var events = JsonDocument.Parse(trace.Stdout).RootElement.EnumerateArray()
            .Select(e => (Id: e.GetProperty("id").GetString(), Event: e.GetProperty("event").GetString())).ToList();
        Assert.Equal([(first, "Received"), (first, "Queued"), (second, "Received"), (second, "Queued")], events);
    }

    [Fact]
    public async Task Sendmail_name_works_for_php_mail()
    {
        // PHP: sendmail_path = "sendmail -t -i"; the message arrives on stdin with LF line ends.
        var r = await Sendmail("To: visitor@example.org\nSubject: Thanks for your message\nFrom: web@example.com\n\nWe got it.\n.\nStill here.\n", "-t", "-i");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Stdout); // sendmail is silent on success
        using var store = _q.Open();
        var m = Assert.Single(store.List());
        Assert.Equal(["visitor@example.org"], m.GetRecipients());
        Assert.Equal(MessageOrigin.Sendmail, m.Envelope.Origin);
        using var reader = new StreamReader(store.OpenBody(m.Id));
        Assert.EndsWith("\r\n\r\nWe got it.\r\n.\r\nStill here.\r\n", await reader.ReadToEndAsync()); // -i: the dot is data
    }

    [Fact]
    public async Task Sendmail_name_works_for_cron()
    {
        // Debian cron: sendmail -FCronDaemon -i -B8BITMIME -oem <user>
        var r = await Sendmail("From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> run-parts\n\noutput\n", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root");
        Assert.Equal(0, r.ExitCode);
        using var store = _q.Open();
        var m = Assert.Single(store.List());
        Assert.Single(m.GetRecipients());
        Assert.StartsWith("root@", m.GetRecipients()[0]);
    }

    [Fact]
    public async Task Sendmail_without_i_ends_input_at_a_lone_dot()
    {
        var r = await Sendmail("Subject: x\n\nfirst\n.\nnever read\n", "bob@example.org");
        Assert.Equal(0, r.ExitCode);
        using var store = _q.Open();
        using var reader = new StreamReader(store.OpenBody(Assert.Single(store.List()).Id));
        string body = await reader.ReadToEndAsync();
        Assert.EndsWith("\r\n\r\nfirst\r\n", body);
    }

    [Theory]
    [InlineData("Subject: x\n\nbody\n", new string[0], 64, "No recipients")]
    [InlineData("", new[] { "bob@example.org" }, 65, "Empty input")]
    [InlineData("just some text\n", new[] { "bob@example.org" }, 65, "not an RFC 5322 message")]
    [InlineData("Subject: x\n\nbody\n", new[] { "bob@@example.org" }, 64, "Bad recipient")]
    [InlineData("Subject: x\n\nbody\n", new[] { "-X" }, 64, "unsupported option")]
    public async Task Sendmail_bad_input_gets_sysexits_codes_and_leaves_nothing(string stdin, string[] args, int exitCode, string message)
    {
        var r = await Sendmail(stdin, args);
        Assert.Equal(exitCode, r.ExitCode);
        Assert.StartsWith("sendmail: ", r.Stderr);
        Assert.Contains(message, r.Stderr);
        Assert.Empty(_q.Files("mess"));
        Assert.Empty(_q.Files("tmp"));
        Assert.Empty(_q.Files("env"));
    }

    [Fact]
    public async Task An_unwritable_queue_is_a_temporary_failure()
    {
        string file = Path.Combine(_q.Root, "a-file");
        File.WriteAllText(file, "");
        var r = await Programs.MailopsAsync("Subject: x\n\nbody\n", "submit", "--create", "--queue", Path.Combine(file, "queue"), "bob@example.org");
        Assert.Equal(75, r.ExitCode);
        Assert.Contains("Cannot open the queue", r.Stderr);
    }

    [Fact]
    public async Task A_mistyped_queue_is_not_created_by_submit_or_sendmail()
    {
        string typo = Path.Combine(_q.Root, "qeueu");
        var submit = await Programs.MailopsAsync("Subject: x\n\nbody\n", "submit", "--queue", typo, "bob@example.org");
        Assert.Equal(75, submit.ExitCode);
        Assert.Contains("there is no queue at " + typo, submit.Stderr);
        var sendmail = await Programs.RunAsync(SendmailLink(), ["-t", "-i"], "To: bob@example.org\nSubject: x\n\nbody\n", new Dictionary<string, string?> { ["MAILOPS_QUEUE"] = typo });
        Assert.Equal(75, sendmail.ExitCode);
        Assert.Single(sendmail.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(Directory.Exists(typo));
        // Asked for, it is made.
        var created = await Programs.MailopsAsync("Subject: x\n\nbody\n", "submit", "--create", "--queue", typo, "bob@example.org");
        Assert.Equal(0, created.ExitCode);
        Assert.True(QueueStore.Exists(typo));
    }

    [Fact]
    public async Task Usage_errors_and_unknown_ids()
    {
        Assert.Equal(64, (await Programs.MailopsAsync(null)).ExitCode);
        Assert.Equal(64, (await Programs.MailopsAsync(null, "frobnicate")).ExitCode);
        Assert.Equal(64, (await Mailops(null, "queue", "--state", "Lost")).ExitCode);
        Assert.Equal(64, (await Mailops(null, "queue", "--bogus")).ExitCode);
        Assert.Equal(64, (await Programs.MailopsAsync(null, "queue", "--queue", Path.Combine(_q.Root, "nowhere"))).ExitCode);
        await Mailops("Subject: x\n\nx\n", "submit", "bob@example.org"); // make the queue exist
        var hold = await Mailops(null, "hold", "0000000000000000");
        Assert.Equal(1, hold.ExitCode);
        Assert.Contains("no message 0000000000000000", hold.Stderr);
        Assert.Equal(0, (await Programs.MailopsAsync(null, "--help")).ExitCode);
    }

    [Fact]
    public async Task Serve_is_woken_by_a_submit_from_another_process_and_stops_on_sigterm_telling_systemd()
    {
        // No DNS here: lookups fail at once (a closed port), so the delivery attempt defers quickly.
        string config = Path.Combine(_q.Root, "config.json");
        await File.WriteAllTextAsync(config, """{ "DnsServers": ["127.0.0.1:9"] }""");
        // systemd's side of Type=notify: a datagram socket named by NOTIFY_SOCKET.
        string notifyPath = Path.Combine(_q.Root, "notify");
        using var notify = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        notify.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(notifyPath));
        async Task<string> NextNotification()
        {
            var buffer = new byte[512];
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            int n = await notify.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None, cts.Token);
            return System.Text.Encoding.UTF8.GetString(buffer, 0, n);
        }
        var ready = NextNotification();
        using var serve = Process.Start(Programs.StartInfo(Programs.Mailops, ["serve", "--config", config, "--queue", _q.QueuePath, "--listen", "127.0.0.1:0"],
            new Dictionary<string, string?> { ["MAILOPS_LOG"] = "debug", ["NOTIFY_SOCKET"] = notifyPath }))!;
        var stderr = new List<string>();
        var woken = new TaskCompletionSource();
        var serving = new TaskCompletionSource();
        var stopping = new TaskCompletionSource();
        serve.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) stderr.Add(e.Data);
            if (e.Data.Contains("serving")) serving.TrySetResult();
            if (e.Data.Contains("woken by the queue trigger")) woken.TrySetResult();
            if (e.Data.Contains("stopping")) stopping.TrySetResult();
        };
        serve.BeginErrorReadLine();
        try
        {
            Assert.True(await Task.WhenAny(serving.Task, Task.Delay(30_000)) == serving.Task, "serve did not start: " + string.Join('\n', stderr));
            string readyMessage = await ready;
            Assert.Contains("READY=1", readyMessage);
            Assert.Contains($"MAINPID={serve.Id}", readyMessage);

            var second = await Mailops(null, "serve");
            Assert.Equal(75, second.ExitCode);
            Assert.Contains("already serves", second.Stderr);

            Assert.Equal(0, (await Mailops("Subject: wake\n\nx\n", "submit", "bob@example.org")).ExitCode);
            Assert.True(await Task.WhenAny(woken.Task, Task.Delay(10_000)) == woken.Task, "no wake-up: " + string.Join('\n', stderr));
        }
        finally
        {
            var stoppingNotice = NextNotification();
            Process.Start("kill", ["-TERM", serve.Id.ToString()])!.WaitForExit();
            Assert.True(serve.WaitForExit(15_000));
            Assert.Contains("STOPPING=1", await stoppingNotice);
        }
        Assert.Equal(0, serve.ExitCode);
        // Not WaitForExit(): the test host may keep the pipe's other end open, so EOF is not a signal here.
        Assert.True(await Task.WhenAny(stopping.Task, Task.Delay(5_000)) == stopping.Task, "no graceful stop was logged");
    }
}
