using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using MailOps.Core.Queue;

namespace MailOps.Bench;

/// <summary>
/// Queue benchmarks and load generators (bench/README.md). Every loop is bounded by a count or
/// stops with its parent (loop mode is killed by the crash test).
///   compare --dir D [--count N] [--size B] [--writers 1,20] [--reps R]   naive loop vs group commit
///   fill    --queue D --count N [--size B] [--writers W]                   preload a queue
///   loop    --queue D [--size B] [--writers W] [--seconds S] [--count N] [--mutate 1]
///                                                                          enqueue until killed, S seconds (60), N messages
///                                                                          (100000) or stdin closing; prints "id sha256"; --mutate 1 also
///                                                                          holds and releases queued messages
///   memory  --queue D                                                      hold every queued message in memory; report RSS
///   maillog --queue D [--messages N] [--text F]                            write one day of mail log for N messages (100000),
///                                                                          through the log writer; the same day as text to F
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0) { Console.Error.WriteLine("usage: mailops-bench compare|fill|loop|memory|listprofile|parse|maillog [options]"); return 64; }
        var options = ParseOptions(args[1..]);
        string Get(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;
        int size = int.Parse(Get("size", "4096"));
        switch (args[0])
        {
            case "compare":
                await CompareAsync(Get("dir", Path.Combine(Path.GetTempPath(), "mailops-bench")), int.Parse(Get("count", "2000")), size,
                    Get("writers", "1,20").Split(',').Select(int.Parse).ToArray(), int.Parse(Get("reps", "3")));
                return 0;
            case "fill":
            {
                using var store = QueueStore.Open(options["queue"]);
                var sw = Stopwatch.StartNew();
                int count = int.Parse(options["count"]);
                await EnqueueManyAsync(store, count, int.Parse(Get("writers", "20")), size, onCommitted: null);
                Console.WriteLine($"filled {count} messages in {sw.Elapsed.TotalSeconds:F1} s");
                return 0;
            }
            case "loop":
            {
                // Meant to be killed (the crash test), but stops by itself: after a time limit, a count,
                // or when stdin reaches EOF, which is what happens when the parent that owns the pipe dies.
                using var store = QueueStore.Open(options["queue"]);
                var stdout = Console.Out;
                var stop = Task.WhenAny(
                    Task.Delay(TimeSpan.FromSeconds(double.Parse(Get("seconds", "60")))),
                    Task.Run(() => Console.In.ReadToEnd()));
                var committed = new List<string>();
                var enqueue = EnqueueManyAsync(store, int.Parse(Get("count", "100000")), int.Parse(Get("writers", "4")), size, (id, hash) =>
                {
                    lock (stdout) { stdout.WriteLine($"{id} {hash}"); stdout.Flush(); }
                    lock (committed) committed.Add(id);
                });
                // --mutate 1: envelopes are rewritten too (hold, release), so a kill can land between
                // an envelope's rename and its summary index line.
                var mutate = Get("mutate", "0") == "1" ? Task.Run(async () =>
                {
                    var random = new Random();
                    while (!stop.IsCompleted && !enqueue.IsCompleted)
                    {
                        string? id;
                        lock (committed) id = committed.Count == 0 ? null : committed[random.Next(committed.Count)];
                        if (id is null) { await Task.Delay(1); continue; }
                        try
                        {
                            await store.HoldAsync(id);
                            await store.ReleaseAsync(id);
                        }
                        catch (QueuedMessageNotFoundException) { } // removed meanwhile (--remove)
                    }
                }) : Task.CompletedTask;
                // --remove 1: one message in three is removed again, so that new messages are written
                // into the files of removed ones (spare files). "removing <id>" is printed first: a
                // kill during the removal may leave the message queued or not.
                var remove = Get("remove", "0") == "1" ? Task.Run(async () =>
                {
                    var random = new Random();
                    int seen = 0;
                    while (!stop.IsCompleted && !enqueue.IsCompleted)
                    {
                        string? id = null;
                        lock (committed)
                            if (committed.Count >= seen + 3)
                            {
                                seen = committed.Count;
                                int at = random.Next(committed.Count);
                                id = committed[at];
                                committed.RemoveAt(at);
                            }
                        if (id is null) { await Task.Delay(1); continue; }
                        lock (stdout) { stdout.WriteLine($"removing {id}"); stdout.Flush(); }
                        try { await store.RemoveAsync(id); }
                        catch (QueuedMessageNotFoundException) { }
                    }
                }) : Task.CompletedTask;
                await Task.WhenAny(stop, enqueue, mutate, remove);
                return 0;
            }
            case "memory":
                return Memory(options["queue"]);
            case "listprofile":
            {
                // Where a listing's time goes (issue 17): each stage alone, three times.
                using var store = QueueStore.Open(options["queue"]);
                for (int rep = 0; rep < 3; rep++)
                {
                    var sw = Stopwatch.StartNew();
                    var present = MailOps.Core.Queue.Posix.ReadDirectory(Path.Combine(store.QueuePath, "env"));
                    double readdir = sw.Elapsed.TotalMilliseconds;
                    sw.Restart();
                    int n = store.Stream().Count();
                    double stream = sw.Elapsed.TotalMilliseconds;
                    sw.Restart();
                    long bytes = 0;
                    foreach (var (name, _) in present) bytes += File.ReadAllBytes(Path.Combine(store.QueuePath, "env", name)).Length;
                    double files = sw.Elapsed.TotalMilliseconds;
                    sw.Restart();
                    var raw = File.ReadAllBytes(Path.Combine(store.QueuePath, "index", "envelopes"));
                    int lines = 0, start = 0;
                    for (int i = 0; i < raw.Length; i++) if (raw[i] == '\n') { lines++; start = i + 1; }
                    double scan = sw.Elapsed.TotalMilliseconds;
                    sw.Restart();
                    var one = File.ReadAllBytes(Path.Combine(store.QueuePath, "env", present[0].Name));
                    for (int i = 0; i < n; i++) System.Text.Json.JsonSerializer.Deserialize(one, MailOps.Core.Queue.QueueJsonContext.Default.Envelope);
                    double parse = sw.Elapsed.TotalMilliseconds;
                    sw.Restart();
                    var p2 = MailOps.Core.Queue.Posix.ReadDirectory(Path.Combine(store.QueuePath, "env"));
                    double rd = sw.Elapsed.TotalMilliseconds; sw.Restart();
                    p2.RemoveAll(e => !QueueId.IsValid(e.Name));
                    double valid = sw.Elapsed.TotalMilliseconds; sw.Restart();
                    p2.Sort((x, y) => string.CompareOrdinal(x.Name, y.Name));
                    double sort = sw.Elapsed.TotalMilliseconds; sw.Restart();
                    int held = store.Stream(new QueueFilter { Sender = "nobody@*" }).Count();
                    double needle = sw.Elapsed.TotalMilliseconds; sw.Restart();
                    int first = store.Stream().Take(20).Count();
                    double first20 = sw.Elapsed.TotalMilliseconds;
                    sw.Restart();
                    int merged = 0, current = 0;
                    foreach (var (_, ino, entry) in store.Index!.Merge(p2)) { merged++; if (entry is { Gone: false } en && en.Inode == ino) current++; }
                    Console.WriteLine($"  {merged} merged, {current} current");
                    double merge = sw.Elapsed.TotalMilliseconds; sw.Restart();
                    int viaRead = store.Index!.Read(p2, _ => null, "zzzzzzzz"u8.ToArray()).Count();
                    double readNeedle = sw.Elapsed.TotalMilliseconds;
                    sw.Restart();
                    var src = new byte[300]; var dst = new byte[4096]; int hits = 0;
                    for (int k = 0; k < 100000; k++) { MailOps.Core.Queue.MailLog.ToLowerAscii(src, dst); if (dst.AsSpan(0, 300).IndexOf("zzzzzzzz"u8) >= 0) hits++; if (((ReadOnlySpan<byte>)src).IndexOf("\\u"u8) >= 0) hits++; }
                    double lower = sw.Elapsed.TotalMilliseconds;
                    Console.WriteLine($"  100000 lowerings of 300 B {lower:F0} ms");
                    Console.WriteLine($"  merge alone {merge:F0} ms, Read with a needle {readNeedle:F0} ms");
                    Console.WriteLine($"  readdir {rd:F0} ms, IsValid {valid:F0} ms, sort {sort:F0} ms, filtered by a needle that never matches {needle:F0} ms, first 20 {first20:F0} ms");
                    Console.WriteLine($"{n} messages: readdir {readdir:F0} ms, Stream() {stream:F0} ms, reading env files {files:F0} ms, scanning the index {scan:F0} ms, parsing one envelope {n} times {parse:F0} ms ({one.Length} B)");
                }
                return 0;
            }
            case "parse":
            {
                // One envelope file read N times by the hand-written reader and by System.Text.Json's
                // general one (issue 17): time and allocation per envelope, after a warm-up, 3 rounds.
                var one = File.ReadAllBytes(options["file"]);
                int count = int.Parse(Get("count", "100000"));
                var general = MailOps.Core.Queue.QueueJsonContext.Default.Envelope;
                if (MailOps.Core.Queue.EnvelopeReader.TryRead(one) is null) Console.WriteLine("the hand-written reader leaves this envelope to System.Text.Json");
                for (int round = 0; round < 4; round++)
                {
                    long allocated = GC.GetAllocatedBytesForCurrentThread();
                    var sw = Stopwatch.StartNew();
                    for (int i = 0; i < count; i++) MailOps.Core.Queue.EnvelopeReader.TryRead(one);
                    double hand = sw.Elapsed.TotalMilliseconds * 1e6 / count;
                    long handBytes = (GC.GetAllocatedBytesForCurrentThread() - allocated) / count;
                    allocated = GC.GetAllocatedBytesForCurrentThread();
                    sw.Restart();
                    for (int i = 0; i < count; i++) System.Text.Json.JsonSerializer.Deserialize(one, general);
                    double stj = sw.Elapsed.TotalMilliseconds * 1e6 / count;
                    long stjBytes = (GC.GetAllocatedBytesForCurrentThread() - allocated) / count;
                    if (round > 0) Console.WriteLine($"{one.Length} B envelope: by hand {hand:F0} ns, {handBytes} B allocated; System.Text.Json {stj:F0} ns, {stjBytes} B allocated");
                }
                return 0;
            }
            case "maillog":
                WriteMailLog(options["queue"], int.Parse(Get("messages", "100000")), options.GetValueOrDefault("text"));
                return 0;
            default:
                Console.Error.WriteLine($"unknown mode {args[0]}");
                return 64;
        }
    }

    /// <summary>
    /// One day of a busy server's log: per message received, queued, attempt and delivered; one in
    /// ten deferred once first, one in fifty bounced. 5,000 senders, 20,000 recipients.
    /// </summary>
    private static void WriteMailLog(string queue, int messages, string? textPath)
    {
        using var store = QueueStore.Open(queue);
        using var text = textPath is null ? null : new StreamWriter(textPath);
        var day = new DateTimeOffset(DateTime.UtcNow.Date, TimeSpan.Zero);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < messages; i++)
        {
            var at = day + TimeSpan.FromSeconds(86_000.0 * i / messages);
            string id = QueueId.New(at);
            var envelope = new Envelope
            {
                Id = id, Arrived = at, Sender = $"sender{i % 5000}@client{i % 300}.example", Size = 4096 + i % 2000,
                MessageId = $"<{i}.{Guid.NewGuid():N}@client{i % 300}.example>", Subject = $"report {i}", ClientAddress = $"192.0.2.{i % 250 + 1}",
                ClientHelo = $"client{i % 300}.example", ReceivedTls = "Tls13 TLS_AES_256_GCM_SHA384", ReceiveSeconds = 0.012,
                Recipients = [new EnvelopeRecipient { Address = $"user{i % 20000}@dest{i % 700}.example" }],
            };
            string rcpt = envelope.Recipients[0].Address;
            var events = new List<JournalEvent> { JournalEvents.Received(envelope), JournalEvents.Queued(envelope, at) };
            void Try(DateTimeOffset when, int code, string reply)
            {
                var result = MailOps.Core.Delivery.RecipientResult.FromReply(rcpt, code, reply, $"mx{i % 700}.dest.example", $"198.51.100.{i % 200 + 1}:25",
                    "Tls13 TLS_AES_256_GCM_SHA384 (not verified: self-signed, Opportunistic)", 31.5) with { ConnectMs = 120.4 };
                events.Add(JournalEvents.Attempt(result, when, envelope));
                events.Add(JournalEvents.Outcome(code < 300 ? JournalEventType.Delivered : code < 500 ? JournalEventType.Deferred : JournalEventType.Bounced, result, when, result.Detail));
            }
            if (i % 10 == 0) Try(at.AddSeconds(1), 451, "4.7.1 greylisted, try again later");
            if (i % 50 == 7) Try(at.AddSeconds(2), 550, "5.1.1 no such user");
            else Try(at.AddSeconds(2), 250, $"2.0.0 Ok: queued as {i:X8}");
            var entries = events.Select(e => MailLogEntry.From(id, e, envelope)).ToList();
            MailLog.Append(store.Layout.LogDir, entries);
            if (text is not null)
                foreach (var e in entries) text.WriteLine($"{e.Time.UtcDateTime:MMM dd HH:mm:ss} bench postfix/mailops: {e}");
        }
        Console.WriteLine($"wrote the log of {messages} messages in {sw.Elapsed.TotalSeconds:F1} s");
    }

    private static Dictionary<string, string> ParseOptions(string[] args)
    {
        var result = new Dictionary<string, string>();
        for (int i = 0; i + 1 < args.Length; i += 2) result[args[i].TrimStart('-')] = args[i + 1];
        return result;
    }

    internal static byte[] MakeBody(int size, int seed)
    {
        var sb = new StringBuilder();
        sb.Append($"From: bench@client.bench.test\r\nTo: user@bench.test\r\nSubject: bench {seed}\r\nMessage-ID: <{Guid.NewGuid():N}@bench.test>\r\n\r\n");
        var random = new Random(seed);
        while (sb.Length < size)
        {
            var line = new char[Math.Min(76, Math.Max(1, size - sb.Length))];
            for (int i = 0; i < line.Length; i++) line[i] = (char)('a' + random.Next(26));
            sb.Append(line).Append("\r\n");
        }
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    private static Envelope NewEnvelope() => new()
    {
        Sender = "bench@client.bench.test",
        Recipients = [new EnvelopeRecipient { Address = "user@bench.test" }],
        Origin = MessageOrigin.Submit,
    };

    /// <summary>Enqueues <paramref name="count"/> messages with <paramref name="writers"/> concurrent writers.</summary>
    private static async Task EnqueueManyAsync(QueueStore store, int count, int writers, int size, Action<string, string>? onCommitted)
    {
        int next = 0;
        var tasks = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            while (true)
            {
                int n = Interlocked.Increment(ref next);
                if (n > count) return;
                var body = MakeBody(size, n);
                string id = await store.EnqueueAsync(NewEnvelope(), new MemoryStream(body));
                onCommitted?.Invoke(id, Convert.ToHexString(SHA256.HashData(body)));
            }
        })).ToArray();
        await Task.WhenAll(tasks);
    }

    /// <summary>One message at a time: write, fsync, rename, fsync the directory. What a simple spool does.</summary>
    private static void NaiveLoop(string dir, int count, int size)
    {
        Directory.CreateDirectory(Path.Combine(dir, "tmp"));
        Directory.CreateDirectory(Path.Combine(dir, "new"));
        for (int i = 0; i < count; i++)
        {
            string name = $"{i}-{Environment.ProcessId}";
            string tmp = Path.Combine(dir, "tmp", name);
            using (var f = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1))
            {
                f.Write(MakeBody(size, i));
                f.Flush(flushToDisk: true);
            }
            File.Move(tmp, Path.Combine(dir, "new", name));
            DurableFile.SyncDirectory(Path.Combine(dir, "new")); // the same fsync(2) of a directory the store uses
        }
    }

    private static async Task CompareAsync(string root, int count, int size, int[] writerCounts, int reps)
    {
        Console.WriteLine($"durable enqueue, {count} messages of {size} octets per run, {reps} reps interleaved, {Environment.ProcessorCount} cores");
        Console.WriteLine($"{"method",-24} {"writers",7} {"median msg/s",12} {"min",8} {"max",8}");
        var results = new Dictionary<string, List<double>>();
        void Record(string key, double rate) { if (!results.TryGetValue(key, out var l)) results[key] = l = new(); l.Add(rate); }

        for (int rep = 0; rep < reps; rep++)
        {
            string naiveDir = Path.Combine(root, $"naive-{rep}");
            var sw = Stopwatch.StartNew();
            NaiveLoop(naiveDir, count, size);
            Record("naive loop|1", count / sw.Elapsed.TotalSeconds);
            Directory.Delete(naiveDir, true);

            foreach (int writers in writerCounts)
            {
                string queueDir = Path.Combine(root, $"queue-{rep}-{writers}");
                using (var store = QueueStore.Open(queueDir))
                {
                    await EnqueueManyAsync(store, 50, writers, size, null); // warm-up: JIT, threads
                    sw.Restart();
                    await EnqueueManyAsync(store, count, writers, size, null);
                    Record($"queue store|{writers}", count / sw.Elapsed.TotalSeconds);
                    if (Environment.GetEnvironmentVariable("BENCH_VERBOSE") == "1")
                        Console.WriteLine($"  {writers} writers: {store.Committer.Committed} commits in {store.Committer.Batches} batches");
                    if (store.List().Count != count + 50) throw new InvalidOperationException("lost messages");
                }
                Directory.Delete(queueDir, true);
            }
        }
        double naiveMedian = Median(results["naive loop|1"]);
        foreach (var (key, rates) in results)
        {
            var parts = key.Split('|');
            double median = Median(rates);
            Console.WriteLine($"{parts[0],-24} {parts[1],7} {median,12:F0} {rates.Min(),8:F0} {rates.Max(),8:F0}   x{median / naiveMedian:F2} naive");
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static int Memory(string queue)
    {
        using var store = QueueStore.Open(queue);
        var sw = Stopwatch.StartNew();
        var all = store.List();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        Console.WriteLine($"{all.Count} messages held in memory, loaded in {sw.Elapsed.TotalSeconds:F2} s: " +
                          $"managed heap {GC.GetTotalMemory(false) / 1048576.0:F1} MiB, resident {self.WorkingSet64 / 1048576.0:F1} MiB, peak resident {self.PeakWorkingSet64 / 1048576.0:F1} MiB");
        GC.KeepAlive(all);
        return 0;
    }
}
