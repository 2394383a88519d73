using System.Diagnostics;
using System.Text;
using MailOps.Core.Queue;

namespace MailOps.Tests;

/// <summary>A queue in a fresh temporary directory, deleted afterwards.</summary>
public sealed class TempQueue : IDisposable
{
    public TempQueue()
    {
        Root = Path.Combine(Path.GetTempPath(), "mailops-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Root);
        QueuePath = Path.Combine(Root, "queue");
    }

    public string Root { get; }
    public string QueuePath { get; }

    public QueueStore Open(QueueStoreOptions? options = null) => QueueStore.Open(QueuePath, options);

    public string[] Files(string sub) =>
        Directory.Exists(Path.Combine(QueuePath, sub)) ? Directory.GetFiles(Path.Combine(QueuePath, sub)).Select(p => Path.GetFileName(p)).ToArray() : [];

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
}

/// <summary>Where the build put the programs under test, and how to run them as a user would.</summary>
public static class Programs
{
    public static readonly string RepoRoot = FindRepoRoot();
    private static readonly string Configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";

    /// <summary>The mailops apphost, exactly as the build leaves it.</summary>
    public static string Mailops => Path.Combine(RepoRoot, "src", "MailOps.Cli", "bin", Configuration, "net10.0", OperatingSystem.IsWindows() ? "mailops.exe" : "mailops");

    /// <summary>The drop helper as the build leaves it (JIT, not setgid: it serves $MAILOPS_QUEUE).</summary>
    public static string DropHelper => Path.Combine(RepoRoot, "src", "MailOps.Drop", "bin", Configuration, "net10.0", "mailops-drop");

    /// <summary>The listing program as the build leaves it (JIT; published, it is compiled ahead of time).</summary>
    public static string ListProgram => Path.Combine(RepoRoot, "src", "MailOps.List", "bin", Configuration, "net10.0", "mailops-list");

    /// <summary>The PowerShell test host (tests/MailOps.PsHost): the real engine, System.Management.Automation 7.6.</summary>
    public static string PsHostDll => Path.Combine(RepoRoot, "tests", "MailOps.PsHost", "bin", Configuration, "net10.0", "MailOps.PsHost.dll");
    public static string ModuleManifest => Path.Combine(RepoRoot, "MailOps.psd1");
    public static string BenchDll => Path.Combine(RepoRoot, "bench", "MailOps.Bench", "bin", Configuration, "net10.0", "mailops-bench.dll");

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "MailOps.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("MailOps.sln not found above " + AppContext.BaseDirectory);
    }

    public static ProcessStartInfo StartInfo(string fileName, IEnumerable<string> args, IDictionary<string, string?>? env = null)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("MAILOPS_QUEUE");
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        return psi;
    }

    public static async Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> args, string? stdin = null,
        IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        using var p = Process.Start(StartInfo(fileName, args, env))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(stdin);
            // A program may stop reading early (it failed, and says so by its exit code).
            try { await p.StandardInput.BaseStream.WriteAsync(bytes); } catch (IOException) { }
        }
        try { p.StandardInput.Close(); } catch (IOException) { }
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', args)} did not finish in time");
        }
        return new ProcessResult(p.ExitCode, await stdout, await stderr);
    }

    public static Task<ProcessResult> MailopsAsync(string? stdin, params string[] args) => RunAsync(Mailops, args, stdin);
}

/// <summary>
/// <c>mailops serve</c> as a process for a test: its stderr collected line by line, the port it
/// got for a 127.0.0.1:0 listener, and a graceful stop (SIGTERM) that the test checks.
/// </summary>
public sealed class ServeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = new();
    private readonly TaskCompletionSource<int> _serving = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServeProcess(IEnumerable<string> args)
    {
        _process = Process.Start(Programs.StartInfo(Programs.Mailops, ["serve", .. args]))!;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_lines) _lines.Add(e.Data);
            var m = System.Text.RegularExpressions.Regex.Match(e.Data, @"serving on 127\.0\.0\.1:(\d+)");
            if (m.Success) _serving.TrySetResult(int.Parse(m.Groups[1].Value));
        };
        _process.BeginErrorReadLine();
    }

    /// <summary>Starts <c>mailops serve ARGS</c> and waits (30 s at most) until it serves.</summary>
    public static async Task<ServeProcess> StartAsync(params string[] args)
    {
        var serve = new ServeProcess(args);
        if (await Task.WhenAny(serve._serving.Task, Task.Delay(30_000)) != serve._serving.Task)
        {
            await serve.DisposeAsync();
            throw new Xunit.Sdk.XunitException("serve did not start:\n" + serve.Log);
        }
        return serve;
    }

    /// <summary>The port of the first 127.0.0.1 listener.</summary>
    public int Port => _serving.Task.Result;
    public int Pid => _process.Id;

    /// <summary>Everything it wrote on stderr so far.</summary>
    public string Log { get { lock (_lines) return string.Join('\n', _lines); } }

    /// <summary>How many stderr lines so far contain <paramref name="text"/>.</summary>
    public int Count(string text) { lock (_lines) return _lines.Count(l => l.Contains(text)); }

    /// <summary>Sends a signal (kill -NAME).</summary>
    public void Signal(string name) => Process.Start("kill", [$"-{name}", _process.Id.ToString()])!.WaitForExit();

    /// <summary>Waits until a stderr line contains <paramref name="text"/> <paramref name="times"/> times in all (20 s at most).</summary>
    public async Task WaitForAsync(string text, int times = 1)
    {
        for (int i = 0; i < 400; i++)
        {
            if (Count(text) >= times) return;
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException($"no '{text}' in the log:\n{Log}");
    }

    /// <summary>SIGTERM, then it must exit within 30 s.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Signal("TERM");
            await Task.WhenAny(_process.WaitForExitAsync(), Task.Delay(30_000));
            bool stopped = _process.HasExited;
            if (!stopped) _process.Kill();
            _process.Dispose();
            if (!stopped) throw new Xunit.Sdk.XunitException("serve did not stop:\n" + Log);
            return;
        }
        _process.Dispose();
    }
}

/// <summary>
/// Ports for test servers: chosen below the kernel's ephemeral range (32768-60999 here), so that
/// no client socket of a test running alongside can take one between the probe and the server's
/// bind, and never the same port twice in one test run.
/// </summary>
public static class TestPorts
{
    private static readonly HashSet<int> Given = new();

    /// <summary>A port free for TCP (and UDP, with <paramref name="udp"/>) on every address in <paramref name="ips"/> (127.0.0.1 when none).</summary>
    public static int Free(string[]? ips = null, bool udp = false)
    {
        ips = ips is { Length: > 0 } ? ips : ["127.0.0.1"];
        for (int attempt = 0; attempt < 200; attempt++)
        {
            int port = Random.Shared.Next(20000, 32700);
            lock (Given) if (Given.Contains(port)) continue;
            bool free = true;
            foreach (var ip in ips)
            {
                try
                {
                    using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork,
                        udp ? System.Net.Sockets.SocketType.Dgram : System.Net.Sockets.SocketType.Stream, udp ? System.Net.Sockets.ProtocolType.Udp : System.Net.Sockets.ProtocolType.Tcp);
                    s.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(ip), port));
                }
                catch (System.Net.Sockets.SocketException) { free = false; break; }
            }
            if (!free) continue;
            lock (Given) if (!Given.Add(port)) continue;
            return port;
        }
        throw new InvalidOperationException("no free port");
    }
}

/// <summary>The configuration of an in-process server that delivers mail for self.test into Maildirs, with no DNS and no TLS.</summary>
public static class LocalServer
{
    public static MailOps.Core.Config.MailOpsConfig Config(string queuePath, string maildir, params string[] mailboxes) => new()
    {
        HostName = "mx.self.test",
        QueuePath = queuePath,
        LocalDomains = ["self.test"],
        Mailboxes = [.. mailboxes],
        MaildirRoot = maildir,
        Listen = ["127.0.0.1:0"],
        DnsServers = ["127.0.0.1:9"],
        Tls = new MailOps.Core.Config.TlsSettings { Enabled = false },
        InboundAuthentication = "Off",
    };
}
