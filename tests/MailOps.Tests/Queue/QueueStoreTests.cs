using System.Text;
using MailOps.Core.Queue;

namespace MailOps.Tests.Queue;

public class QueueStoreTests : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    internal static Envelope NewEnvelope(params string[] recipients) => new()
    {
        Sender = "alice@example.com",
        Recipients = recipients.Select(r => new EnvelopeRecipient { Address = r }).ToList(),
        Origin = MessageOrigin.Submit,
    };

    internal static readonly byte[] SampleBody = Encoding.ASCII.GetBytes(
        "Message-ID: <sample@example.com>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nFrom: alice@example.com\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n");

    [Fact]
    public async Task Enqueue_commits_envelope_and_byte_identical_body()
    {
        using var store = _q.Open();
        string id = await store.EnqueueAsync(NewEnvelope("bob@example.org", "carol@example.net"), new MemoryStream(SampleBody));

        Assert.True(QueueId.IsValid(id));
        var listed = Assert.Single(store.List());
        Assert.Equal(id, listed.Id);
        Assert.Equal(MessageState.Queued, listed.Kind);
        Assert.Equal(SampleBody.Length, listed.Size);
        Assert.Equal("<sample@example.com>", listed.MessageId);
        Assert.Equal("Grüße", listed.Subject);
        Assert.Equal(["bob@example.org", "carol@example.net"], listed.GetRecipients());
        using var body = store.OpenBody(id);
        var copy = new MemoryStream();
        await body.CopyToAsync(copy);
        Assert.Equal(SampleBody, copy.ToArray());
        Assert.Empty(_q.Files("tmp"));
    }

    [Fact]
    public async Task Nothing_is_visible_before_the_commit_and_an_abandoned_message_leaves_nothing()
    {
        using var store = _q.Open();
        string id;
        await using (var message = store.CreateMessage())
        {
            id = message.Id;
            await message.Body.WriteAsync(SampleBody);
            await message.Body.FlushAsync();
            Assert.Empty(store.List());
            Assert.Null(store.Find(id));
            Assert.Throws<QueuedMessageNotFoundException>(() => store.OpenBody(id));
        }
        Assert.Empty(_q.Files("mess"));
        Assert.Empty(_q.Files("tmp"));
        Assert.Empty(_q.Files("env"));
    }

    [Fact]
    public async Task Ids_sort_by_arrival()
    {
        using var store = _q.Open();
        var ids = new List<string>();
        for (int i = 0; i < 5; i++) ids.Add(await store.EnqueueAsync(NewEnvelope("bob@example.org"), new MemoryStream(SampleBody)));
        Assert.Equal(ids, ids.Order(StringComparer.Ordinal));
        Assert.Equal(ids, store.List().Select(m => m.Id));
    }

    [Fact]
    public async Task Concurrent_enqueues_share_flushes_and_none_is_lost()
    {
        using var store = _q.Open();
        const int count = 64;
        var ids = await Task.WhenAll(Enumerable.Range(0, count).Select(i =>
            Task.Run(() => store.EnqueueAsync(NewEnvelope($"u{i}@example.org"), new MemoryStream(Encoding.ASCII.GetBytes($"Subject: {i}\r\n\r\nbody {i}\r\n"))))));

        Assert.Equal(count, ids.Distinct().Count());
        Assert.Equal(count, store.List().Count);
        Assert.Equal(count, store.Committer.Committed);
        Assert.True(store.Committer.Batches < count, $"expected batching, got {store.Committer.Batches} batches for {count} messages");
        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            using var reader = new StreamReader(store.OpenBody(id));
            Assert.Equal($"Subject: {i}\r\n\r\nbody {i}\r\n", await reader.ReadToEndAsync());
        }
    }

    [Fact]
    public async Task A_commit_that_cannot_complete_is_a_transient_failure_and_leaves_no_files()
    {
        using var store = _q.Open();
        await store.EnqueueAsync(NewEnvelope("bob@example.org"), new MemoryStream(SampleBody));
        Directory.Delete(Path.Combine(_q.QueuePath, "env"), recursive: true); // the commit's target vanishes

        var ex = await Assert.ThrowsAsync<QueueFailureException>(() => store.EnqueueAsync(NewEnvelope("bob@example.org"), new MemoryStream(SampleBody)));
        Assert.True(ex.IsTransient);
        Assert.StartsWith("451 4.3.0", ex.SmtpReply);
        Assert.Single(_q.Files("mess")); // only the first message's body
        Assert.Empty(_q.Files("tmp"));
    }

    [Fact]
    public void Opening_a_queue_where_none_can_be_made_is_a_transient_failure()
    {
        string file = Path.Combine(_q.Root, "not-a-directory");
        File.WriteAllText(file, "x");
        var ex = Assert.Throws<QueueFailureException>(() => QueueStore.Open(Path.Combine(file, "queue")));
        Assert.True(ex.IsTransient);
    }

    [Fact]
    public async Task Hold_release_and_remove_change_state_and_are_journaled()
    {
        using var store = _q.Open();
        string id = await store.EnqueueAsync(NewEnvelope("bob@example.org", "carol@example.net"), new MemoryStream(SampleBody));

        var held = await store.HoldAsync(id);
        Assert.Equal(MessageState.Held, held.Kind);
        Assert.All(store.ReadEnvelope(id)!.Recipients, r => Assert.Equal(RecipientState.Held, r.State));
        Assert.Equal(MessageState.Held, (await store.HoldAsync(id)).Kind); // idempotent

        var released = await store.ReleaseAsync(id);
        Assert.Equal(MessageState.Queued, released.Kind);
        Assert.All(store.ReadEnvelope(id)!.Recipients, r => Assert.Equal(RecipientState.Pending, r.State));

        var removed = await store.RemoveAsync(id, "test");
        Assert.Equal(id, removed.Id);
        Assert.Null(store.Find(id));
        Assert.Empty(_q.Files("mess"));
        Assert.Empty(_q.Files("env"));

        var events = store.ReadJournal(id).Select(e => e.Event).ToList();
        Assert.Equal([JournalEventType.Received, JournalEventType.Queued,
                      JournalEventType.Held, JournalEventType.Held,       // one per recipient
                      JournalEventType.Released, JournalEventType.Released,
                      JournalEventType.Removed], events);
        Assert.Equal("<sample@example.com>", store.ReadJournal(id)[0].MessageId);
        Assert.Equal([id], store.FindByMessageId("sample@example.com"));
    }

    [Fact]
    public async Task A_release_is_a_marker_until_the_envelope_is_next_written()
    {
        using var store = _q.Open();
        string id = await store.EnqueueAsync(NewEnvelope("bob@example.org", "carol@example.net"), new MemoryStream(SampleBody));
        string env = Path.Combine(_q.QueuePath, "env", id), marker = Path.Combine(_q.QueuePath, "released", id);
        await store.HoldAsync(id);
        byte[] held = File.ReadAllBytes(env);

        // Released: the envelope file is not rewritten; every reader sees the release.
        Assert.Equal(MessageState.Queued, (await store.ReleaseAsync(id)).Kind);
        Assert.Equal(held, File.ReadAllBytes(env));
        Assert.True(File.Exists(marker));
        Assert.Equal("Queued", store.Find(id)!.State);
        Assert.Equal("Queued", Assert.Single(store.List()).State);
        Assert.Equal("Queued", Assert.Single(store.ListEachFile(null)).State);
        Assert.All(store.ReadEnvelope(id)!.Recipients, r => Assert.Equal(RecipientState.Pending, r.State));
        Assert.Equal(0, await store.HoldManyAsync([id], hold: false)); // released already: no second marker, no second journal line
        CrashTests.AssertIndexAgrees(store);

        // Held again: the file says held and the marker is gone.
        Assert.Equal(MessageState.Held, (await store.HoldAsync(id)).Kind);
        Assert.False(File.Exists(marker));
        Assert.Equal("Held", Assert.Single(store.List()).State);

        // Released again, then written back (as a delivery's record does): the file says pending, the marker is gone.
        await store.ReleaseAsync(id);
        using (await store.LockAsync(id, default)) store.WriteEnvelopeLocked(store.ReadEnvelope(id)!);
        Assert.False(File.Exists(marker));
        Assert.DoesNotContain("Held", File.ReadAllText(env));
        Assert.Equal("Queued", Assert.Single(store.List()).State);

        // A marker left by a crash (the envelope was written back, the unlink lost) does not release a later hold.
        File.WriteAllBytes(marker, []);
        await store.HoldAsync(id);
        Assert.False(File.Exists(marker));
        Assert.Equal("Held", Assert.Single(store.List()).State);
        CrashTests.AssertIndexAgrees(store);

        // The message leaves with its marker; the sweep removes the marker of one that left without.
        await store.ReleaseAsync(id);
        await store.RemoveAsync(id);
        Assert.Empty(_q.Files("released"));
        File.WriteAllBytes(marker, []);
        store.Sweep(asServer: false);
        Assert.Empty(_q.Files("released"));

        var events = store.ReadJournal(id).Select(e => e.Event).Where(e => e is JournalEventType.Held or JournalEventType.Released).ToList();
        Assert.Equal(3 * 2, events.Count(e => e == JournalEventType.Held));
        Assert.Equal(3 * 2, events.Count(e => e == JournalEventType.Released));
    }

    [Fact]
    public async Task Operations_on_unknown_ids_say_not_found()
    {
        using var store = _q.Open();
        await Assert.ThrowsAsync<QueuedMessageNotFoundException>(() => store.HoldAsync("0000000000000000"));
        await Assert.ThrowsAsync<QueuedMessageNotFoundException>(() => store.RemoveAsync("0000000000000000"));
        await Assert.ThrowsAsync<QueuedMessageNotFoundException>(() => store.ReleaseAsync("../../etc/passwd"));
        Assert.Null(store.Find("../env/x"));
        Assert.Empty(store.ReadJournal("../../x"));
    }

    [Fact]
    public async Task Make_due_brings_deferred_recipients_forward_and_release_keeps_attempt_history()
    {
        var clock = new ManualClock(DateTimeOffset.Parse("2026-11-22T10:00:00Z"));
        using var store = _q.Open(new QueueStoreOptions { Clock = clock });
        var envelope = NewEnvelope("bob@example.org");
        string id = await store.EnqueueAsync(envelope, new MemoryStream(SampleBody));

        // What the delivery engine will record after a 4xx (issue 4 adds its own API for this).
        using (await store.LockAsync(id, default))
        {
            var e = store.ReadEnvelope(id)!;
            e.Recipients[0].State = RecipientState.Deferred;
            e.Recipients[0].Attempts = 1;
            e.Recipients[0].NextAttempt = clock.GetUtcNow().AddMinutes(10);
            e.Recipients[0].LastError = "451 4.7.1 greylisted";
            store.WriteEnvelopeLocked(e);
        }
        var deferred = store.Find(id)!;
        Assert.Equal(MessageState.Deferred, deferred.Kind);
        Assert.Equal("451 4.7.1 greylisted", deferred.LastError);
        Assert.Equal(clock.GetUtcNow().AddMinutes(10), deferred.NextAttempt);

        var due = await store.MakeDueAsync(id);
        Assert.Null(due.NextAttempt);
        Assert.Equal(MessageState.Deferred, due.Kind); // still a retry, now due

        await store.HoldAsync(id);
        var released = await store.ReleaseAsync(id);
        Assert.Equal(RecipientState.Deferred, released.Envelope.Recipients[0].State);
        Assert.Equal(1, released.Attempts);
    }

    [Fact]
    public async Task Filters_select_by_state_sender_recipient_domain_and_age()
    {
        var clock = new ManualClock(DateTimeOffset.Parse("2026-11-22T10:00:00Z"));
        using var store = _q.Open(new QueueStoreOptions { Clock = clock });
        string old = await store.EnqueueAsync(NewEnvelope("bob@example.org"), new MemoryStream(SampleBody));
        clock.Advance(TimeSpan.FromHours(2));
        var other = NewEnvelope("carol@Example.NET");
        other.Sender = "noreply@shop.example";
        string fresh = await store.EnqueueAsync(other, new MemoryStream(SampleBody));
        await store.HoldAsync(fresh);

        Assert.Equal([fresh], store.List(new QueueFilter { State = MessageState.Held }).Select(m => m.Id));
        Assert.Equal([fresh], store.List(new QueueFilter { Sender = "NOREPLY@*" }).Select(m => m.Id));
        Assert.Equal([old], store.List(new QueueFilter { Recipient = "bob@*" }).Select(m => m.Id));
        Assert.Equal([fresh], store.List(new QueueFilter { Domain = "example.net" }).Select(m => m.Id));
        Assert.Equal([old], store.List(new QueueFilter { OlderThan = TimeSpan.FromHours(1) }).Select(m => m.Id));
        Assert.Equal([old], store.List(new QueueFilter { Ids = [old, "0000000000000000", "bad"] }).Select(m => m.Id));
    }

    [Fact]
    public async Task Two_stores_in_one_process_do_not_lose_each_others_updates()
    {
        using var a = _q.Open();
        using var b = _q.Open();
        string id = await a.EnqueueAsync(NewEnvelope("bob@example.org"), new MemoryStream(SampleBody));

        // Each store bumps the attempt counter 50 times under the id's lock; a lost update would show.
        async Task Bump(QueueStore s)
        {
            for (int i = 0; i < 50; i++)
            {
                using (await s.LockAsync(id, default))
                {
                    var e = s.ReadEnvelope(id)!;
                    e.Recipients[0].Attempts++;
                    s.WriteEnvelopeLocked(e);
                }
            }
        }
        await Task.WhenAll(Task.Run(() => Bump(a)), Task.Run(() => Bump(b)));
        Assert.Equal(100, a.ReadEnvelope(id)!.Recipients[0].Attempts);
    }

    [Fact]
    public async Task Server_lock_is_exclusive_and_released_on_dispose()
    {
        using var store = _q.Open();
        Assert.False(store.IsServed());
        var held = store.TryAcquireServerLock();
        Assert.NotNull(held);
        Assert.True(store.IsServed());
        Assert.Null(store.TryAcquireServerLock());
        held!.Dispose();
        Assert.False(store.IsServed());
        await Task.CompletedTask;
    }
}

/// <summary>A clock the test moves by hand.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;
    public override DateTimeOffset GetUtcNow() => _now;
    public void Advance(TimeSpan by) => _now += by;
}
