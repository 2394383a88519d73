using System.Text;
using MailOps.Core.Queue;

namespace MailOps.Tests.Queue;

/// <summary>
/// Spare files (docs/queue.md): the files of a message that left the queue are written again for
/// a later one, never while something may still read them, never before their move is durable,
/// and a reused file holds exactly the new message.
/// </summary>
public class SpareFilesTests : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    private static bool Supported => OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("MAILOPS_NO_SYNCFS") != "1";

    private static byte[] Body(string subject, int size)
    {
        var head = $"Message-ID: <{subject}@example.com>\r\nSubject: {subject}\r\nFrom: alice@example.com\r\n\r\n";
        var text = new StringBuilder(head);
        for (int line = 0; text.Length < size; line++) text.Append($"{subject} line {line} ").Append('x', 50).Append("\r\n");
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    private static Task<string> Enqueue(QueueStore store, byte[] body, string recipient = "bob@example.org") =>
        store.EnqueueAsync(QueueStoreTests.NewEnvelope(recipient), new MemoryStream(body));

    private static Task Deliver(QueueStore store, string id, Func<bool>? nothingReads) =>
        store.RecordAsync(id, e =>
        {
            foreach (var r in e.Recipients) r.State = RecipientState.Delivered;
            return [];
        }, _ => false, default, nothingReads);

    private ulong Inode(string path) => Posix.LStat(path)?.Inode ?? throw new FileNotFoundException(path);

    private Dictionary<string, ulong> SpareInodes() =>
        _q.Files("spare").ToDictionary(n => n, n => Inode(Path.Combine(_q.QueuePath, "spare", n)));

    private static byte[] ReadBody(QueueStore store, string id)
    {
        using var body = store.OpenBody(id);
        var copy = new MemoryStream();
        body.CopyTo(copy);
        return copy.ToArray();
    }

    [Fact]
    public async Task A_delivered_message_s_files_hold_a_later_message_exactly_once_their_move_is_durable()
    {
        if (!Supported) return;
        using var store = _q.Open();
        string a = await Enqueue(store, Body("first", 6000));
        await Deliver(store, a, nothingReads: () => true);

        Assert.False(File.Exists(Path.Combine(_q.QueuePath, "env", a)));
        Assert.False(File.Exists(Path.Combine(_q.QueuePath, "mess", a)));
        var spare = SpareInodes();
        Assert.Equal([a + ".e", a + ".m"], spare.Keys.Order(StringComparer.Ordinal));

        // No syncfs has run since they were moved: the next message gets new files, and its commit's syncfs makes the spares usable.
        string b = await Enqueue(store, Body("second", 5000));
        Assert.DoesNotContain(Inode(Path.Combine(_q.QueuePath, "mess", b)), spare.Values);
        Assert.DoesNotContain(Inode(Path.Combine(_q.QueuePath, "env", b)), spare.Values);
        Assert.Equal(2, _q.Files("spare").Length);

        var shorter = Body("third", 900);
        string c = await Enqueue(store, shorter, "carol@example.net");
        Assert.Equal(spare[a + ".m"], Inode(Path.Combine(_q.QueuePath, "mess", c)));
        Assert.Equal(spare[a + ".e"], Inode(Path.Combine(_q.QueuePath, "env", c)));
        Assert.Empty(_q.Files("spare"));
        Assert.Empty(_q.Files("tmp"));

        // The reused files end where the new message ends: nothing of the first one is left in them.
        Assert.Equal(shorter.Length, new FileInfo(Path.Combine(_q.QueuePath, "mess", c)).Length);
        Assert.Equal(shorter, ReadBody(store, c));
        var listed = store.Find(c)!;
        Assert.Equal(["carol@example.net"], listed.GetRecipients());
        Assert.Equal("<third@example.com>", listed.MessageId);
        Assert.Equal(shorter.Length, listed.Size);
        Assert.Equal(QueueJson.Serialize(store.ReadEnvelope(c)!).Length, new FileInfo(Path.Combine(_q.QueuePath, "env", c)).Length);
        Assert.Equal([b, c], store.List().Select(m => m.Id).Order(StringComparer.Ordinal));
        using var fresh = _q.Open(); // another reader: the index and the files agree
        Assert.Equal(["carol@example.net"], fresh.Find(c)!.GetRecipients());
    }

    [Fact]
    public async Task Files_something_may_still_read_are_unlinked_and_so_is_a_large_body()
    {
        if (!Supported) return;
        using var store = _q.Open();

        // The delivery cannot say nothing else reads the body (another job of it may be in flight).
        string busy = await Enqueue(store, Body("busy", 3000));
        await Deliver(store, busy, nothingReads: () => false);
        string unsaid = await Enqueue(store, Body("unsaid", 3000));
        await Deliver(store, unsaid, nothingReads: null);
        Assert.Empty(_q.Files("spare"));
        Assert.Empty(_q.Files("mess"));

        // A body above the limit is never kept (its envelope is).
        string large = await Enqueue(store, Body("large", (int)SpareFiles.MaxBody + 1000));
        await Deliver(store, large, nothingReads: () => true);
        Assert.Equal([large + ".e"], _q.Files("spare"));

        // Removed while a delivery is marked in flight: the body that delivery may be reading is unlinked.
        string active = await Enqueue(store, Body("active", 3000));
        store.MarkActive(active);
        await store.RemoveAsync(active);
        Assert.DoesNotContain(active + ".m", _q.Files("spare"));
        Assert.DoesNotContain(active, _q.Files("mess"));

        // Removed with nothing in flight: both files are kept.
        string idle = await Enqueue(store, Body("idle", 3000));
        await store.RemoveAsync(idle);
        Assert.Contains(idle + ".e", _q.Files("spare"));
        Assert.Contains(idle + ".m", _q.Files("spare"));
        Assert.Empty(_q.Files("mess"));
        Assert.Empty(store.List());
    }

    [Fact]
    public async Task Files_moved_by_another_process_are_found_and_used_after_a_syncfs()
    {
        if (!Supported) return;
        using var remover = _q.Open();
        var ids = new List<string>();
        for (int i = 0; i < 3; i++) ids.Add(await Enqueue(remover, Body("old" + i, 2000)));

        using var server = _q.Open(); // started before the removal, as a running server is
        foreach (var id in ids) await remover.RemoveAsync(id);
        var spare = SpareInodes();
        Assert.Equal(6, spare.Count);

        string first = await Enqueue(server, Body("new0", 1500)); // finds them; not yet durable for it
        Assert.DoesNotContain(Inode(Path.Combine(_q.QueuePath, "mess", first)), spare.Values);
        var later = new List<string>();
        for (int i = 1; i <= 3; i++) later.Add(await Enqueue(server, Body("new" + i, 1500)));
        foreach (var id in later)
        {
            Assert.Contains(Inode(Path.Combine(_q.QueuePath, "mess", id)), spare.Values);
            Assert.Contains(Inode(Path.Combine(_q.QueuePath, "env", id)), spare.Values);
            Assert.Equal(Body(server.Find(id)!.Subject!, 1500), ReadBody(server, id));
        }
        Assert.Empty(_q.Files("spare"));
        Assert.Equal(4, server.List().Count);
    }

    [Fact]
    public async Task An_envelope_file_that_names_another_message_is_not_read_as_this_one()
    {
        using var store = _q.Open();
        string a = await Enqueue(store, Body("a", 500));
        string b = await Enqueue(store, Body("b", 500));
        // What a reader would see if it opened env/a just as its file became b's envelope.
        File.Copy(Path.Combine(_q.QueuePath, "env", b), Path.Combine(_q.QueuePath, "env", a), overwrite: true);
        Assert.Null(store.ReadEnvelope(a));
        Assert.NotNull(store.ReadEnvelope(b));
    }

    [Fact]
    public void Spare_files_stay_within_their_count_and_disk_limits_and_wait_for_a_syncfs()
    {
        if (!Supported) return;
        string dir = Path.Combine(_q.Root, "spare"), work = Path.Combine(_q.Root, "work");
        Directory.CreateDirectory(dir);
        Directory.CreateDirectory(work);
        string Make(string name, int length)
        {
            string path = Path.Combine(work, name);
            File.WriteAllBytes(path, new byte[length]);
            return path;
        }
        var spare = new SpareFiles(dir, TimeProvider.System, maxFiles: 3, maxBytes: 5 * 4096);

        spare.Give(Make("a", 100), "a.m", 100);     // 1 block
        spare.Give(Make("b", 5000), "b.m", 5000);   // 2 blocks
        spare.Give(Make("c", 9000), "c.m", 9000);   // 3 more would be 6 blocks: unlinked
        spare.Give(Make("d", 4096), "d.m", 4096);   // 4 blocks
        spare.Give(Make("e", 10), "e.m", 10);       // a fourth file: unlinked
        spare.Give(Path.Combine(work, "gone"), "gone.m", 10); // already gone: no error
        Assert.Equal(["a.m", "b.m", "d.m"], Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Empty(Directory.GetFiles(work));

        // Not yet made durable by a syncfs: none is taken.
        Assert.False(spare.TryTake(Path.Combine(work, "x")));
        spare.Synced(spare.BeforeSync());
        var taken = new List<string>();
        for (int i = 0; spare.TryTake(Path.Combine(work, "t" + i)); i++) taken.Add("t" + i);
        Assert.Equal(3, taken.Count);
        Assert.Empty(Directory.GetFiles(dir));

        var given = spare.BeforeSync();
        spare.Give(Make("f", 10), "f.m", 10); // moved after the syncfs began: not covered by it
        spare.Synced(given);
        Assert.False(spare.TryTake(Path.Combine(work, "x")));
        Assert.Equal(["f.m"], Directory.GetFiles(dir).Select(Path.GetFileName));

        // A destination that exists is never replaced.
        spare.Synced(spare.BeforeSync());
        File.WriteAllText(Path.Combine(work, "taken"), "mine");
        Assert.False(spare.TryTake(Path.Combine(work, "taken")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(work, "taken")));
        Assert.True(spare.TryTake(Path.Combine(work, "free")));
    }

    [Fact]
    public async Task A_spare_file_that_cannot_be_opened_is_dropped_and_the_message_is_queued_all_the_same()
    {
        if (!Supported) return;
        using var store = _q.Open();
        string a = await Enqueue(store, Body("a", 2000));
        await Deliver(store, a, nothingReads: () => true);
        await Enqueue(store, Body("sync", 500)); // its syncfs makes a's files usable
        // Someone holds both spare files' locks (as a sweep probing a leftover would, that instant).
        var heldInodes = SpareInodes().Values.ToList();
        var held = _q.Files("spare").Select(n => new FileStream(Path.Combine(_q.QueuePath, "spare", n), FileMode.Open, FileAccess.ReadWrite, FileShare.None)).ToList();
        try
        {
            var body = Body("new", 1000);
            string id = await Enqueue(store, body);
            Assert.Equal(body, ReadBody(store, id));
            Assert.DoesNotContain(Inode(Path.Combine(_q.QueuePath, "mess", id)), heldInodes);
            Assert.DoesNotContain(Inode(Path.Combine(_q.QueuePath, "env", id)), heldInodes);
            Assert.Empty(_q.Files("spare"));
            Assert.Empty(_q.Files("tmp"));
            Assert.Equal(_q.Files("env").Order(), _q.Files("mess").Order());
        }
        finally
        {
            foreach (var f in held) f.Dispose();
        }
    }

    [Fact]
    public async Task The_sweep_leaves_spare_files_alone()
    {
        if (!Supported) return;
        using var store = _q.Open();
        string a = await Enqueue(store, Body("a", 500));
        await Deliver(store, a, nothingReads: () => true);
        var report = store.Sweep(asServer: true);
        Assert.Equal(0, report.OrphanBodiesRemoved);
        Assert.Equal(2, _q.Files("spare").Length);
    }
}
