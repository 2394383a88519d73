using System.Collections.Concurrent;
using System.Text.Json;
using MailOps.Core.Queue;
using Xunit.Abstractions;

namespace MailOps.Tests.Queue;

/// <summary>
/// Parallel submits, listings, holds and removes, each in its own mailops process, on one queue:
/// no message is lost or duplicated, every listing is valid, no process fails unexpectedly.
/// </summary>
public class MultiProcessTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    [Fact]
    public async Task Concurrent_cli_processes_neither_lose_nor_duplicate_mail()
    {
        const int submitters = 3, perSubmitter = 10;
        var submitted = new ConcurrentDictionary<string, string>(); // id -> token in its body
        var removed = new ConcurrentBag<string>();
        var failures = new ConcurrentBag<string>();
        int listings = 0, holds = 0;
        using var done = new CancellationTokenSource();
        _q.Open().Dispose(); // the queue exists before the readers start: "no queue here" is not what this test is about

        async Task<ProcessResult> Run(string? stdin, params string[] args)
        {
            var r = await Programs.MailopsAsync(stdin, [.. args, "--queue", _q.QueuePath]);
            if (r.Stderr.Contains("Unhandled exception") || r.Stderr.Contains("   at ")) failures.Add(r.ToString());
            return r;
        }

        var submitTasks = Enumerable.Range(0, submitters).Select(s => Task.Run(async () =>
        {
            for (int i = 0; i < perSubmitter; i++)
            {
                string token = $"token-{s}-{i}-{Guid.NewGuid():N}";
                var r = await Run($"Subject: {token}\n\n{token}\n", "submit", "-f", "load@example.com", $"rcpt{s}@example.org");
                if (r.ExitCode != 0) { failures.Add(r.ToString()); continue; }
                Assert.True(submitted.TryAdd(r.Stdout.Trim(), token), "a queue id was handed out twice");
            }
        })).ToArray();

        var lister = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                var r = await Run(null, "queue", "--json");
                if (r.ExitCode != 0) { failures.Add(r.ToString()); continue; }
                using var doc = JsonDocument.Parse(r.Stdout); // every listing is whole, valid JSON
                var ids = doc.RootElement.EnumerateArray().Select(e => e.GetProperty("id").GetString()).ToList();
                Assert.Equal(ids.Count, ids.Distinct().Count());
                Interlocked.Increment(ref listings);
            }
        });

        var holder = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                var some = submitted.Keys.Take(5).ToArray();
                if (some.Length == 0) { await Task.Delay(50); continue; }
                foreach (var verb in new[] { "hold", "release" })
                {
                    var r = await Run(null, [verb, .. some]);
                    // 1 = some id was removed meanwhile, which the remover may do; anything else is a failure.
                    if (r.ExitCode is not (0 or 1)) failures.Add(r.ToString());
                    Interlocked.Increment(ref holds);
                }
            }
        });

        var remover = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                var victim = submitted.Keys.Where(id => !removed.Contains(id)).OrderBy(_ => Random.Shared.Next()).FirstOrDefault();
                if (victim is null || removed.Count >= submitters * perSubmitter / 4) { await Task.Delay(100); continue; }
                var r = await Run(null, "remove", victim);
                if (r.ExitCode == 0) removed.Add(victim);
                else failures.Add(r.ToString());
            }
        });

        await Task.WhenAll(submitTasks);
        await Task.Delay(500);
        done.Cancel();
        await Task.WhenAll(lister, holder, remover);

        Assert.Empty(failures);
        using var store = _q.Open();
        var queued = store.List();
        Assert.Equal(submitters * perSubmitter, submitted.Count);
        Assert.Equal(submitted.Keys.Except(removed).Order(), queued.Select(m => m.Id).Order());
        foreach (var m in queued)
        {
            using var reader = new StreamReader(store.OpenBody(m.Id));
            string body = await reader.ReadToEndAsync();
            Assert.Contains(submitted[m.Id], body);
            Assert.Equal(m.Envelope.Subject, submitted[m.Id]);
            Assert.True(m.Kind is MessageState.Queued or MessageState.Held);
        }
        Assert.Empty(_q.Files("tmp"));
        Assert.Equal(_q.Files("env").Order(), _q.Files("mess").Order());
        output.WriteLine($"{submitted.Count} submitted, {removed.Count} removed, {listings} listings, {holds} hold/release runs");
        Assert.True(listings > 0 && holds > 0 && removed.Count > 0, "the readers and operators did not overlap with the writers");
    }
}
