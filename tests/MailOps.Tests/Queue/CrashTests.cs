using System.Diagnostics;
using System.Security.Cryptography;
using MailOps.Core.Queue;
using Xunit.Abstractions;

namespace MailOps.Tests.Queue;

/// <summary>
/// Behaviour 1 and 2: a writer killed with SIGKILL at any moment loses no acknowledged message
/// and leaves nothing half-written visible; the sweep removes its leftovers.
/// </summary>
public class CrashTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    [Fact]
    public async Task Sigkill_at_random_moments_loses_no_acknowledged_message()
    {
        const int rounds = 12;
        var random = new Random(20261122);
        var acknowledged = new Dictionary<string, string>(); // id -> sha256 of the body
        var removing = new Dictionary<string, string>(); // being removed when the loop was killed, or removed: queued or not, never another body
        int leftoversSwept = 0;
        bool reused = false;
        var spareInodes = new HashSet<ulong>(); // spare files left by the last round's kill

        for (int round = 0; round < rounds; round++)
        {
            var psi = Programs.StartInfo("dotnet", [Programs.BenchDll, "loop", "--queue", _q.QueuePath, "--writers", "4", "--size", "3000", "--seconds", "30", "--mutate", "1", "--remove", "1"]);
            using var child = Process.Start(psi)!;
            var lines = new List<string>();
            var errors = new System.Text.StringBuilder();
            var errorReader = Task.Run(async () =>
            {
                while (await child.StandardError.ReadLineAsync() is { } line) lock (errors) errors.AppendLine(line);
            });
            var reader = Task.Run(async () =>
            {
                while (await child.StandardOutput.ReadLineAsync() is { } line) lock (lines) lines.Add(line);
            });

            // Wait until it is enqueueing, then kill it at a random moment.
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                lock (lines) if (lines.Count > 0) break;
                if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                {
                    child.Kill();
                    lock (errors) Assert.Fail("the loop printed nothing in 30 s: " + errors);
                }
                await Task.Delay(10);
            }
            await Task.Delay(random.Next(5, 400));
            child.Kill(); // SIGKILL on Unix, to this one process
            await child.WaitForExitAsync();
            await reader;
            await errorReader;

            foreach (var line in lines)
            {
                var parts = line.Split(' ');
                if (parts.Length == 2 && QueueId.IsValid(parts[0]) && parts[1].Length == 64) acknowledged[parts[0]] = parts[1];
                else if (parts.Length == 2 && parts[0] == "removing" && acknowledged.Remove(parts[1], out var hash)) removing[parts[1]] = hash;
            }

            using var store = _q.Open();
            // The summary index may have lost the line of the write the kill interrupted: the
            // listing must still say what the envelopes say, before the sweep repairs it and after.
            AssertIndexAgrees(store);
            var report = store.Sweep(asServer: true);
            leftoversSwept += report.TmpRemoved + report.OrphanBodiesRemoved;
            if (OperatingSystem.IsLinux())
            {
                // The next loop finds the spare files this one left, and writes new messages into them.
                ulong InodeOf(string dir, string name) => Posix.LStat(Path.Combine(_q.QueuePath, dir, name))?.Inode ?? 0;
                reused |= _q.Files("mess").Any(id => spareInodes.Contains(InodeOf("mess", id)));
                spareInodes = _q.Files("spare").Select(name => InodeOf("spare", name)).ToHashSet();
            }
            AssertQueueIsWhole(store, acknowledged, removing);
            AssertIndexAgrees(store);
        }

        output.WriteLine($"{rounds} kills, {acknowledged.Count} acknowledged messages, {leftoversSwept} leftovers swept");
        Assert.True(acknowledged.Count >= rounds, "too few messages were acknowledged to say anything");
        Assert.True(leftoversSwept > 0, "no kill ever interrupted a write: the test did not exercise the sweep");
        using (var store = _q.Open())
            Assert.True(acknowledged.Keys.Any(id => store.ReadJournal(id).Any(e => e.Event == JournalEventType.Held)), "no envelope was ever rewritten: the test did not exercise the index's lines for rewrites");
        Assert.True(removing.Count > 0, "no message was ever removed: the test did not exercise spare files");
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("MAILOPS_NO_SYNCFS") != "1")
            Assert.True(reused, "no message was ever written into a removed one's file: the test did not exercise spare files");
    }

    /// <summary>The listing through the summary index is the listing of the envelope files, field for field.</summary>
    internal static void AssertIndexAgrees(QueueStore store)
    {
        static string Json(QueuedMail m) => System.Text.Encoding.UTF8.GetString(QueueJson.Serialize(m.GetEnvelope())) + (m.State == "Active" ? " active" : "");
        var fromIndex = store.List().Select(Json).ToList();
        var fromFiles = store.ListEachFile(null).Select(Json).ToList();
        Assert.Equal(fromFiles, fromIndex);
    }

    private void AssertQueueIsWhole(QueueStore store, Dictionary<string, string> acknowledged, Dictionary<string, string> removing)
    {
        var listed = store.List().ToDictionary(m => m.Id);
        foreach (var (id, hash) in removing)
        {
            if (!listed.ContainsKey(id)) continue;
            using var body = store.OpenBody(id);
            Assert.Equal(hash, Convert.ToHexString(SHA256.HashData(body)));
        }
        foreach (var (id, hash) in acknowledged)
        {
            Assert.True(listed.ContainsKey(id), $"acknowledged message {id} is not in the queue");
            using var body = store.OpenBody(id);
            Assert.Equal(hash, Convert.ToHexString(SHA256.HashData(body)));
            Assert.Equal(body.Length, listed[id].Size);
        }
        // No partial entry: nothing in tmp/, every body has its envelope and vice versa, every envelope parses.
        Assert.Empty(_q.Files("tmp"));
        Assert.Equal(_q.Files("env").Order(), _q.Files("mess").Order());
        Assert.Equal(_q.Files("env").Length, listed.Count);
    }
}
