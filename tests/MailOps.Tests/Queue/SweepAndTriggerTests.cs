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
    public async Task Journals_outlive_their_message_for_the_retention_period_only()
    {
        using var store = _q.Open(new QueueStoreOptions { JournalRetention = TimeSpan.FromDays(7) });
        string gone = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        string queued = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        await store.RemoveAsync(gone);

        Assert.Equal(0, store.Sweep(asServer: false).JournalsExpired);
        Assert.NotEmpty(store.ReadJournal(gone));

        var eightDaysAgo = DateTime.UtcNow.AddDays(-8);
        File.SetLastWriteTimeUtc(Path.Combine(_q.QueuePath, "journal", gone), eightDaysAgo);
        File.SetLastWriteTimeUtc(Path.Combine(_q.QueuePath, "journal", queued), eightDaysAgo);
        Assert.Equal(1, store.Sweep(asServer: false).JournalsExpired);
        Assert.Empty(store.ReadJournal(gone));
        Assert.NotEmpty(store.ReadJournal(queued)); // still queued: its journal stays
    }

    [Fact]
    public async Task A_journal_line_cut_short_by_a_crash_does_not_hide_the_rest()
    {
        using var store = _q.Open();
        string id = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        // What a crash in the middle of an append leaves: the record's leading newline and part of it.
        File.AppendAllText(Path.Combine(_q.QueuePath, "journal", id), "\n{\"time\":\"2026-11-22T1");
        await store.HoldAsync(id);
        Assert.Equal([JournalEventType.Received, JournalEventType.Queued, JournalEventType.Held], store.ReadJournal(id).Select(e => e.Event));
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
