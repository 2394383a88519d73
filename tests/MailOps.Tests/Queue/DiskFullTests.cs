using System.Diagnostics;
using System.Net;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Smtp;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Queue;

/// <summary>
/// A test that mounts a file system (root only). .ci/run runs as root and sets
/// MAILOPS_REQUIRE_PEERS=1, so there it always runs; elsewhere it is skipped with a message.
/// </summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "mounts a tmpfs: Linux only";
        else if (Environment.UserName != "root" && Environment.GetEnvironmentVariable("MAILOPS_REQUIRE_PEERS") != "1")
            Skip = "mounts a small tmpfs to fill it: run as root (as .ci/run does)";
    }
}

/// <summary>The queue on a full disk: every writer answers with a temporary failure, leaves nothing behind, and works again once space is freed.</summary>
public sealed class DiskFullTests : IDisposable
{
    private readonly string _mount = Path.Combine(Path.GetTempPath(), "mailops-full-" + Guid.NewGuid().ToString("N")[..8]);

    public DiskFullTests()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root") return;
        Directory.CreateDirectory(_mount);
        var mount = Process.Start("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", _mount])!;
        mount.WaitForExit();
        Assert.Equal(0, mount.ExitCode);
    }

    public void Dispose()
    {
        if (!Directory.Exists(_mount)) return;
        Process.Start("umount", ["-l", _mount])!.WaitForExit();
        try { Directory.Delete(_mount, recursive: true); } catch (IOException) { }
    }

    private string QueuePath => Path.Combine(_mount, "queue");

    private void AssertNothingHalfWritten(int committed)
    {
        Assert.Empty(Directory.GetFiles(Path.Combine(QueuePath, "tmp")));
        Assert.Equal(committed, Directory.GetFiles(Path.Combine(QueuePath, "env")).Length);
        Assert.Equal(committed, Directory.GetFiles(Path.Combine(QueuePath, "mess")).Length);
    }

    /// <summary>Writes a file until the disk is full; returns its path.</summary>
    private string Fill()
    {
        string filler = Path.Combine(_mount, "filler");
        var chunk = new byte[64 * 1024];
        using var f = new FileStream(filler, FileMode.Create, FileAccess.Write, FileShare.None, 1);
        try
        {
            for (int i = 0; i < 1000; i++) f.Write(chunk);
        }
        catch (IOException) { }
        for (int size = 4096; size > 0; size /= 2)
            try { f.Write(chunk, 0, size); } catch (IOException) { } // the last pages
        return filler;
    }

    private static async Task<string?> SendAsync(IPEndPoint ep, string body)
    {
        using var client = new RawSmtpClient(ep);
        await client.ReplyAsync();
        await client.SendAsync("EHLO c\r\nMAIL FROM:<s@far.test>\r\nRCPT TO:<alice@self.test>\r\nDATA\r\n");
        for (int i = 0; i < 3; i++) await client.ReplyAsync();
        Assert.StartsWith("354", await client.ReplyAsync());
        await client.SendAsync(body + ".\r\n");
        string? reply = await client.ReplyAsync();
        // The session goes on after a failed message.
        await client.SendAsync("NOOP\r\n");
        Assert.StartsWith("250", await client.ReplyAsync());
        await client.SendAsync("QUIT\r\n");
        return reply;
    }

    [RootFact]
    public async Task A_full_disk_gets_4xx_over_SMTP_and_exit_75_from_submit_and_leaves_nothing_behind()
    {
        using var store = QueueStore.Open(QueuePath);
        var config = new MailOpsConfig
        {
            HostName = "mx.self.test", LocalDomains = ["self.test"], Mailboxes = ["alice@self.test"],
            Tls = new TlsSettings { Enabled = false }, RelayClients = [], InboundAuthentication = "Off",
        };
        await using var listener = new SmtpListener(new SmtpServerContext(config, store), [new IPEndPoint(IPAddress.Loopback, 0)]);
        listener.Start();
        var ep = listener.LocalEndpoints[0];
        string body = "Subject: big\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 998) + "\r\n", 300)); // ~300 KB

        string filler = Fill();
        for (int i = 0; i < 3; i++)
        {
            string? reply = await SendAsync(ep, body);
            Assert.True(reply is not null && reply.StartsWith('4'), $"expected a 4xx reply, got: {reply}");
            Assert.Matches("^45[12] 4\\.3\\.[01]", reply);
        }
        AssertNothingHalfWritten(0);

        var submit = await Programs.RunAsync(Programs.Mailops, ["submit", "--queue", QueuePath, "-f", "s@far.test", "alice@self.test"], body);
        Assert.True(submit.ExitCode == 75, submit.ToString());
        Assert.Single(submit.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("   at ", submit.Stderr);
        AssertNothingHalfWritten(0);

        // Space comes back: both ways work again, nothing needs a restart.
        File.Delete(filler);
        Assert.StartsWith("250 2.0.0", await SendAsync(ep, body));
        submit = await Programs.RunAsync(Programs.Mailops, ["submit", "--queue", QueuePath, "-f", "s@far.test", "alice@self.test"], body);
        Assert.True(submit.ExitCode == 0, submit.ToString());
        AssertNothingHalfWritten(2);
    }
}
