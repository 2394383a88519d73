using MailOps.Core.Hosting;
using MailOps.Core.Queue;

namespace MailOps.Tests.Queue;

/// <summary>
/// The summary index (docs/queue.md, "The summary index"): a cache of the envelopes that a listing
/// reads in one pass, which must never say anything the envelopes do not.
/// </summary>
public class QueueIndexTests
{
    private static async Task<string> EnqueueAsync(QueueStore store, string recipient) =>
        await store.EnqueueAsync(QueueStoreTests.NewEnvelope(recipient), new MemoryStream(QueueStoreTests.SampleBody));

    private static string IndexFile(TempQueue q) => Path.Combine(q.QueuePath, "index", "envelopes");

    [Fact]
    public async Task Listing_through_the_index_follows_writes_rewrites_and_removals_before_and_after_compaction()
    {
        using var q = new TempQueue();
        using var store = q.Open();
        var ids = new List<string>();
        for (int i = 0; i < 30; i++) ids.Add(await EnqueueAsync(store, $"u{i}@example.org"));
        await store.HoldAsync(ids[3]);
        await store.RemoveAsync(ids[4]);
        CrashTests.AssertIndexAgrees(store);

        Assert.Equal((29, 0), store.CompactIndex());
        var snapshot = File.ReadAllLines(IndexFile(q));
        Assert.StartsWith("{\"snapshot\":", snapshot[0]);
        var indexed = snapshot.Skip(1).Select(l => l[7..23]).ToList();
        Assert.Equal(indexed.Order(StringComparer.Ordinal), indexed); // sorted by id, so a listing merges it in one pass
        Assert.DoesNotContain(ids[4], indexed);

        // Lines appended after the snapshot win over it.
        await store.ReleaseAsync(ids[3]);
        await store.RemoveAsync(ids[5]);
        ids.Add(await EnqueueAsync(store, "late@example.org"));
        CrashTests.AssertIndexAgrees(store);
        Assert.Equal(ids.Count - 2, store.List().Count);
        Assert.Equal("Queued", store.List(new QueueFilter { Ids = [ids[3]] }).Single().State);
        Assert.Equal("Queued", store.List().Single(m => m.Id == ids[3]).State);
        Assert.Equal(ids[0], store.Stream().First().Id); // oldest first
    }

    [Fact]
    public async Task A_filtered_listing_skips_lines_without_the_filters_literal_and_finds_what_reading_every_file_finds()
    {
        using var q = new TempQueue();
        using var store = q.Open();
        foreach (var r in new[] { "Kate@Example.ORG", "kate+news@example.org", "\u212Aate@example.org", "bob@example.org", "kate@other.example", "KATE@EXAMPLE.ORG" })
            await EnqueueAsync(store, r);
        store.CompactIndex();
        await EnqueueAsync(store, "kate@example.org"); // one in the appended lines too
        foreach (var filter in new[]
        {
            new QueueFilter { Recipient = "kate@example.org" },
            new QueueFilter { Recipient = "KATE@*" },
            new QueueFilter { Recipient = "kate+*" },
            new QueueFilter { Domain = "example.org" },
            new QueueFilter { Sender = "*@sender.example" },
            new QueueFilter { Recipient = "nobody@nowhere.example" },
        })
        {
            var viaIndex = store.List(filter).Select(m => m.Id).ToList();
            var viaFiles = store.ListEachFile(filter).Select(m => m.Id).ToList();
            Assert.Equal(viaFiles, viaIndex);
        }
        Assert.Equal(4, store.List(new QueueFilter { Recipient = "kate@example.org" }).Count); // the Kelvin sign matches k, as Wildcard does
        Assert.Equal("kate@example.org"u8.ToArray(), new QueueFilter { Recipient = "Kate@Example.org" }.Needle());
        Assert.Null(new QueueFilter { Sender = "<>" }.Needle());

        // A state a recipient must be in to list the message in it: its "state" is the literal.
        Assert.Equal("\"state\":\"held\""u8.ToArray(), new QueueFilter { State = MessageState.Held }.Needle());
        Assert.Null(new QueueFilter { State = MessageState.Queued }.Needle());
        Assert.Null(new QueueFilter { State = MessageState.Active }.Needle());
        var ids = store.List().Select(m => m.Id).ToList();
        await store.HoldAsync(ids[0]);
        await store.HoldAsync(ids[1]);
        await store.ReleaseAsync(ids[1]); // says held in the file, listed as queued
        await store.RecordAsync(ids[2], e => { e.Recipients[0].State = RecipientState.Deferred; return []; }, _ => false, default);
        await store.RecordAsync(ids[3], e => { e.Recipients[0].State = RecipientState.Bounced; e.Recipients.Add(new EnvelopeRecipient { Address = "x@example.org" }); return []; }, _ => false, default);
        File.WriteAllText(Path.Combine(q.QueuePath, "active", ids[4]), "");
        foreach (var state in Enum.GetValues<MessageState>())
        {
            var filter = new QueueFilter { State = state };
            Assert.Equal(store.ListEachFile(filter).Select(m => m.Id), store.List(filter).Select(m => m.Id));
        }
        Assert.Equal([ids[0]], store.List(new QueueFilter { State = MessageState.Held }).Select(m => m.Id));
        Assert.Equal([ids[2]], store.List(new QueueFilter { State = MessageState.Deferred }).Select(m => m.Id));
        Assert.Equal([ids[4]], store.List(new QueueFilter { State = MessageState.Active }).Select(m => m.Id));
        Assert.Contains(ids[1], store.List(new QueueFilter { State = MessageState.Queued }).Select(m => m.Id));
    }

    [Fact]
    public async Task A_line_that_does_not_name_the_current_file_is_never_believed()
    {
        using var q = new TempQueue();
        using var store = q.Open();
        string id = await EnqueueAsync(store, "bob@example.org");
        store.CompactIndex();
        // A writer that died between its rename and its index line: the envelope changed on disk
        // (a new file, so a new inode) and the index still has the old one.
        var envelope = store.ReadEnvelope(id)!;
        envelope.Recipients[0].State = RecipientState.Held;
        string tmp = Path.Combine(q.QueuePath, "tmp", "x");
        File.WriteAllBytes(tmp, QueueJson.Serialize(envelope));
        File.Move(tmp, Path.Combine(q.QueuePath, "env", id), overwrite: true);
        Assert.Equal("Held", store.List().Single().State);
        CrashTests.AssertIndexAgrees(store);

        // Garbage, a cut line, a missing index: the envelopes still answer.
        File.AppendAllText(IndexFile(q), "{\"id\":\"" + id + "\",\"ino\":1,\"mt\":1,\"env\":{\"broken\n{\"id\":");
        CrashTests.AssertIndexAgrees(store);
        File.Delete(IndexFile(q));
        CrashTests.AssertIndexAgrees(store);
        Assert.Equal((0, 1), store.CompactIndex(verify: true));
        CrashTests.AssertIndexAgrees(store);
    }

    [Fact]
    public async Task Listings_taken_while_a_server_delivers_only_show_queued_messages_each_once_and_end_empty()
    {
        using var q = new TempQueue();
        string maildir = Path.Combine(q.Root, "maildir");
        const int Count = 600;
        using (var preload = q.Open())
            for (int i = 0; i < Count; i++) await EnqueueAsync(preload, $"alice{i % 3}@self.test");
        var queued = new HashSet<string>(Directory.GetFiles(Path.Combine(q.QueuePath, "env")).Select(Path.GetFileName)!);

        MailServer.IndexCompactionInterval = TimeSpan.FromMilliseconds(200);
        await using var server = MailServer.Start(LocalServer.Config(q.QueuePath, maildir, "alice0@self.test", "alice1@self.test", "alice2@self.test"));
        using var reader = q.Open(); // another store, as another process would have
        int listings = 0, last = Count;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var listed = reader.List();
            listings++;
            Assert.Equal(listed.Count, listed.Select(m => m.Id).Distinct().Count());
            Assert.All(listed, m => Assert.Contains(m.Id, queued));
            Assert.All(listed, m => Assert.NotEqual("Delivered", m.State));
            Assert.True(listed.Count <= last, $"the queue grew from {last} to {listed.Count}");
            last = listed.Count;
            if (last == 0) break;
            // As an operator's watch would: a listing every 50 ms, not a loop that holds a
            // thread-pool thread the deliveries need.
            await Task.Delay(50);
        }
        MailServer.IndexCompactionInterval = TimeSpan.FromSeconds(15);
        Assert.Equal(0, last);
        Assert.True(listings > 2, "the listing never saw the queue part-delivered");
        int delivered = Enumerable.Range(0, 3).Sum(i => Directory.GetFiles(Path.Combine(maildir, "self.test", $"alice{i}", "new")).Length);
        Assert.Equal(Count, delivered);
    }

    [Fact]
    public async Task A_running_server_delivers_what_another_process_releases_and_the_markers_leave_with_the_messages()
    {
        using var q = new TempQueue();
        string maildir = Path.Combine(q.Root, "maildir");
        const int Count = 50;
        using (var preload = q.Open())
        {
            for (int i = 0; i < Count; i++) await EnqueueAsync(preload, "alice@self.test");
            Assert.Equal(Count, await preload.HoldManyAsync(null, hold: true));
        }
        string box = Path.Combine(maildir, "self.test", "alice", "new");
        int Delivered() => Directory.Exists(box) ? Directory.GetFiles(box).Length : 0;

        await using var server = MailServer.Start(LocalServer.Config(q.QueuePath, maildir, "alice@self.test"));
        await Task.Delay(1000); // the server has scanned the held queue
        Assert.Equal(0, Delivered());

        using var other = q.Open(); // as `mailops release --all` would
        Assert.Equal(Count, await other.HoldManyAsync(null, hold: false));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (other.Count() > 0 && DateTime.UtcNow < deadline) await Task.Delay(50);

        Assert.Equal(0, other.Count());
        Assert.Equal(Count, Delivered());
        Assert.Empty(q.Files("released"));
        Assert.Empty(q.Files("active"));
    }

    [Fact]
    public async Task Holding_and_releasing_every_message_at_once_changes_each_once_with_its_journal_and_the_index()
    {
        using var q = new TempQueue();
        using var store = q.Open();
        const int Count = 600; // more than one batch
        var ids = new List<string>();
        for (int i = 0; i < Count; i++)
            ids.Add(await store.EnqueueAsync(QueueStoreTests.NewEnvelope($"a{i}@example.org", $"b{i}@example.net"), new MemoryStream(QueueStoreTests.SampleBody)));
        await store.HoldAsync(ids[0]); // already held: left as it is

        Assert.Equal(Count - 1, await store.HoldManyAsync(null, hold: true));
        Assert.All(store.List(), m => Assert.Equal("Held", m.State));
        Assert.All(store.ListEachFile(null), m => Assert.Equal("Held", m.State));
        CrashTests.AssertIndexAgrees(store);
        Assert.Equal(2, store.ReadJournal(ids[9]).Count(e => e.Event == JournalEventType.Held)); // one per recipient
        Assert.Equal(2, store.ReadJournal(ids[0]).Count(e => e.Event == JournalEventType.Held)); // not twice
        Assert.Equal(2 * Count, MailLog.Search(q.QueuePath, new MailLogQuery { Events = [JournalEventType.Held] }).Count());

        // A list of ids: one given twice and one not queued are each changed at most once, or skipped.
        Assert.Equal(2, await store.HoldManyAsync([ids[1], ids[1], "0000000000000000", ids[2]], hold: false));
        Assert.Equal(Count - 2, await store.HoldManyAsync(null, hold: false));
        Assert.All(store.ListEachFile(null), m => Assert.Equal("Queued", m.State));
        Assert.All(store.List(), m => Assert.Equal("Queued", m.State));
        Assert.All(store.ListEachFile(null), m => Assert.Null(m.NextAttempt));
        Assert.Equal(Count, q.Files("released").Length); // a marker each, the envelopes as they were
        CrashTests.AssertIndexAgrees(store);
        Assert.Empty(q.Files("tmp"));
        Assert.Equal(Count, store.Count());
    }
}
