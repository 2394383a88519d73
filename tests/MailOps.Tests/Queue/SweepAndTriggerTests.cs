using System.Text.Json;
using MailOps.Core.Queue;

namespace MailOps.Tests.Queue;

public class SweepAndTriggerTests : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    [Fact]
    public async Task Sweep_removes_dead_leftovers_but_not_a_live_writers_files()
    {
        using var store = _q.Open();
        string committed = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));

        // Leftovers of a writer that died: an envelope never committed, a body without envelope.
        string deadId = QueueId.New();
        File.WriteAllText(Path.Combine(_q.QueuePath, "tmp", deadId), "{}");
        File.WriteAllText(Path.Combine(_q.QueuePath, "mess", deadId), "partial body");

        // A writer that is alive: its body file is open and locked.
        await using var live = store.CreateMessage();
        await live.Body.WriteAsync(QueueStoreTests.SampleBody);

        var report = store.Sweep(asServer: false);
        Assert.Equal(1, report.TmpRemoved);
        Assert.Equal(1, report.OrphanBodiesRemoved);
        Assert.Equal(new[] { committed, live.Id }.Order(), _q.Files("mess").Order());
        Assert.Empty(_q.Files("tmp"));

        // The live writer still commits fine after the sweep.
        string id = await live.CommitAsync(QueueStoreTests.NewEnvelope("carol@example.org"));
        Assert.NotNull(store.Find(id));
    }

    [Fact]
    public void A_marker_is_a_second_name_of_the_envelope_or_an_empty_file_where_a_link_is_refused()
    {
        string dir = Path.Combine(_q.Root, "markers");
        Directory.CreateDirectory(dir);
        string envelope = Path.Combine(dir, "envelope"), marker = Path.Combine(dir, "marker");
        File.WriteAllText(envelope, "{}");

        DurableFile.Link(envelope, marker);
        Assert.Equal("{}", File.ReadAllText(marker)); // the same file: no inode of its own
        DurableFile.Link(envelope, marker); // there already: left as it is
        Assert.Throws<FileNotFoundException>(() => DurableFile.Link(Path.Combine(dir, "gone"), Path.Combine(dir, "m2")));

        // link(2) refuses a directory (EPERM), as file systems without hard links refuse every link: the marker is an empty file.
        string refused = Path.Combine(dir, "m3");
        DurableFile.Link(_q.Root, refused);
        Assert.True(File.Exists(refused));
        Assert.Equal(0, new FileInfo(refused).Length);
    }

    [Fact]
    public async Task Sweep_as_server_clears_interrupted_deliveries_and_journals_possible_duplicates()
    {
        using var store = _q.Open();
        string id = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        File.WriteAllText(Path.Combine(_q.QueuePath, "active", id), ""); // a delivery was in flight at the crash
        Assert.Equal(MessageState.Active, store.Find(id)!.Kind);

        Assert.Empty(store.Sweep(asServer: false).InterruptedDeliveries); // only the server may clear markers
        var report = store.Sweep(asServer: true);

        Assert.Equal([id], report.InterruptedDeliveries);
        Assert.Empty(_q.Files("active"));
        Assert.Equal(MessageState.Queued, store.Find(id)!.Kind);
        Assert.Contains(store.ReadJournal(id), e => e.Event == JournalEventType.PossibleDuplicate);
    }

    [Fact]
    public async Task A_messages_history_is_in_the_mail_log_and_outlives_it_for_the_retention_period_only()
    {
        using var store = _q.Open(new QueueStoreOptions { JournalRetention = TimeSpan.FromDays(7) });
        string gone = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        string queued = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        await store.HoldAsync(gone);
        await store.ReleaseAsync(gone);
        await store.RemoveAsync(gone);
        Assert.False(Directory.Exists(Path.Combine(_q.QueuePath, "journal"))); // no file per message for its history
        Assert.Equal([JournalEventType.Received, JournalEventType.Queued, JournalEventType.Held, JournalEventType.Released, JournalEventType.Removed],
            store.ReadJournal(gone).Select(e => e.Event));
        Assert.Equal([gone, queued], store.FindByMessageId("<sample@example.com>"));
        AssertOnePassReadsAsEachAlone(store, gone, queued, QueueId.New());

        // A day of the log older than the retention goes, with the history in it.
        string logDir = Path.Combine(_q.QueuePath, "log");
        var old = DateTimeOffset.UtcNow.AddDays(-9);
        string oldDay = Path.Combine(logDir, old.UtcDateTime.ToString("yyyy-MM-dd") + ".jsonl");
        File.WriteAllText(oldDay, $$"""{"time":"{{old:O}}","id":"{{queued}}","event":"MadeDue"}""" + "\n");
        Assert.Equal(JournalEventType.MadeDue, store.ReadJournal(queued)[0].Event);
        store.Sweep(asServer: false);
        Assert.False(File.Exists(oldDay));
        Assert.Equal([JournalEventType.Received, JournalEventType.Queued], store.ReadJournal(queued).Select(e => e.Event));
    }

    [Fact]
    public async Task Journal_files_of_an_older_queue_are_still_read_then_expired()
    {
        using var store = _q.Open(new QueueStoreOptions { JournalRetention = TimeSpan.FromDays(7) });
        string gone = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        string queued = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        // The journal files the queue kept before: what the log also has, up to the last line.
        string journal = Directory.CreateDirectory(Path.Combine(_q.QueuePath, "journal")).FullName;
        foreach (var id in new[] { gone, queued })
        {
            var events = store.ReadJournal(id);
            File.WriteAllText(Path.Combine(journal, id), string.Concat(events.Select(e => "\n" + JsonSerializer.Serialize(e, QueueJsonContext.Default.JournalEvent)))
                + "\n{\"time\":\"2026-11-22T1"); // and a line cut short by a crash
        }
        await store.RemoveAsync(gone);
        Assert.Equal([JournalEventType.Received, JournalEventType.Queued, JournalEventType.Removed], store.ReadJournal(gone).Select(e => e.Event)); // not twice
        AssertOnePassReadsAsEachAlone(store, gone, queued);

        Assert.Equal(0, store.Sweep(asServer: false).JournalsExpired);
        var eightDaysAgo = DateTime.UtcNow.AddDays(-8);
        File.SetLastWriteTimeUtc(Path.Combine(journal, gone), eightDaysAgo);
        File.SetLastWriteTimeUtc(Path.Combine(journal, queued), eightDaysAgo);
        Assert.Equal(1, store.Sweep(asServer: false).JournalsExpired);
        Assert.Equal([queued], Directory.GetFiles(journal).Select(Path.GetFileName)); // still queued: its journal stays
    }

    /// <summary>Many histories read in one pass over the log (a traced pipeline) are each what reading it alone gives.</summary>
    private static void AssertOnePassReadsAsEachAlone(QueueStore store, params string[] ids)
    {
        static string Json(IEnumerable<JournalEvent> events) => string.Join("\n", events.Select(e => JsonSerializer.Serialize(e, QueueJsonContext.Default.JournalEvent)));
        var together = store.ReadJournals(ids);
        Assert.Equal(ids.Order(), together.Keys.Order());
        foreach (var id in ids) Assert.Equal(Json(store.ReadJournal(id)), Json(together[id]));
        var traced = MessageTrace.Read(store, [.. ids, "<sample@example.com>"]);
        Assert.Equal([.. ids, "<sample@example.com>"], traced.Select(t => t.Key));
        Assert.Equal(MessageTrace.Read(store, "<sample@example.com>").Select(e => e.ToString()), traced[^1].Events.Select(e => e.ToString()));
    }

    [Fact]
    public async Task A_log_line_cut_short_by_a_crash_does_not_hide_the_next()
    {
        using var store = _q.Open();
        string id = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        // What a writer killed in the middle of its append leaves: part of a line, no newline.
        string today = Directory.GetFiles(Path.Combine(_q.QueuePath, "log")).Single();
        File.AppendAllText(today, "{\"time\":\"2026-11-22T1");
        await store.HoldAsync(id);
        Assert.Equal([JournalEventType.Received, JournalEventType.Queued, JournalEventType.Held], store.ReadJournal(id).Select(e => e.Event));
        Assert.Equal(4, File.ReadAllLines(today).Length);
    }

    [Fact]
    public void Every_field_of_an_event_comes_back_from_the_mail_log()
    {
        using var store = _q.Open();
        string id = QueueId.New();
        var attempt = new JournalEvent
        {
            Time = DateTimeOffset.UtcNow, Event = JournalEventType.Attempt, Recipient = "bob@example.org", Host = "mx.example.org", Address = "192.0.2.1:25",
            Tls = "Tls13 TLS_AES_256_GCM_SHA384 (verified, DANE)", Status = "250 2.0.0", Detail = "Ok: queued as X", DurationMs = 31.5, User = "alice via pwsh",
            Delays = new JournalDelays { BeforeQueue = 0.1, InQueue = 2, Connect = 0.3, Transmit = 0.04 },
        };
        var received = new JournalEvent { Time = attempt.Time.AddSeconds(-2), Event = JournalEventType.Received, MessageId = "<m@example.org>", Size = 2201, Address = "192.0.2.7", Host = "laptop" };
        store.AppendJournal(id, [received, attempt]);
        string Json(JournalEvent e) => JsonSerializer.Serialize(e, QueueJsonContext.Default.JournalEvent);
        Assert.Equal([Json(received), Json(attempt)], store.ReadJournal(id).Select(Json));
    }

    [Fact]
    public async Task Trigger_pulls_wake_the_listener_and_coalesce()
    {
        Directory.CreateDirectory(_q.QueuePath);
        await using var listener = new QueueTriggerListener(_q.QueuePath);
        var wait = listener.WaitAsync();
        Assert.False(wait.IsCompleted);

        for (int i = 0; i < 5; i++) QueueTrigger.Pull(_q.QueuePath);
        Assert.True(await Task.WhenAny(wait, Task.Delay(10_000)) == wait, "no wake-up within 10 s");

        await WaitUntil(() => listener.Pulls == 5);
        var second = listener.WaitAsync(); // the five pulls coalesce into at most one more wake-up
        await Task.WhenAny(second, Task.Delay(200));
        var third = listener.WaitAsync();
        await Task.Delay(200);
        Assert.False(third.IsCompleted);
    }

    [Fact]
    public void Pulling_with_no_listener_is_harmless()
    {
        Directory.CreateDirectory(_q.QueuePath);
        QueueTrigger.Pull(_q.QueuePath);
        QueueTrigger.Pull(Path.Combine(_q.Root, "no-such-queue"));
    }

    [Fact]
    public void A_long_queue_path_gets_a_short_socket_path()
    {
        string longPath = Path.Combine(_q.Root, new string('q', 120));
        string socket = QueueTrigger.SocketPath(longPath);
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(socket) < 100);
        Assert.Equal(socket, QueueTrigger.SocketPath(longPath + Path.DirectorySeparatorChar));
        Assert.Equal(Path.Combine(Path.GetFullPath(_q.QueuePath), "trigger"), QueueTrigger.SocketPath(_q.QueuePath));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (int i = 0; i < 200 && !condition(); i++) await Task.Delay(50);
        Assert.True(condition());
    }
}
