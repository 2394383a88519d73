using System.Text;
using System.Text.Json;

namespace MailOps.Core.Queue;

public sealed class QueueStoreOptions
{
    /// <summary>How long a journal outlives its message (docs/queue.md: 7 days).</summary>
    public TimeSpan JournalRetention { get; init; } = TimeSpan.FromDays(7);
    public TimeProvider Clock { get; init; } = TimeProvider.System;
}

/// <summary>What a sweep removed (docs/queue.md, "The sweep").</summary>
public sealed record SweepReport(int TmpRemoved, int OrphanBodiesRemoved, IReadOnlyList<string> InterruptedDeliveries, int JournalsExpired)
{
    /// <summary>Messages queued when the sweep looked (env/ entries, from one readdir).</summary>
    public int Queued { get; init; }
}

/// <summary>
/// The durable queue: the only code that touches the spool directory. Every process that
/// enqueues or changes messages (server, CLI, cmdlets, sendmail) opens its own instance on the
/// same path; they coordinate through the file system (docs/queue.md).
/// </summary>
public sealed class QueueStore : IDisposable
{
    private readonly QueueStoreOptions _options;
    private readonly MutationLocks _locks;
    private readonly Lazy<GroupCommitter> _committer;
    private int _tmpCounter;

    private QueueStore(string path, QueueStoreOptions options)
    {
        Layout = new QueueLayout(path);
        _options = options;
        DurableFile.CreatePrivateDirectory(Layout.Root, UnixFileMode.GroupExecute);
        foreach (var dir in Layout.AllDirectories) DurableFile.CreatePrivateDirectory(dir);
        _locks = MutationLocks.For(Layout.MutateLock);
        if (GroupCommitter.UsesSyncfs) Spare = new SpareFiles(Layout.SpareDir, options.Clock);
        _committer = new Lazy<GroupCommitter>(() => new GroupCommitter(Layout.MessDir, Layout.EnvDir, Spare));
        if (OperatingSystem.IsLinux()) Index = new QueueIndex(Layout);
    }

    /// <summary>Opens (creating if needed) the queue at <paramref name="path"/>.</summary>
    /// <exception cref="QueueFailureException">The directory cannot be created or written (transient: fix and retry).</exception>
    public static QueueStore Open(string path, QueueStoreOptions? options = null)
    {
        try
        {
            return new QueueStore(path, options ?? new QueueStoreOptions());
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw QueueFailureException.Transient($"Cannot open the queue at {path}: {ex.Message}", ex);
        }
    }

    /// <summary>True when a queue has been made at <paramref name="path"/> (reading commands should not create one).</summary>
    public static bool Exists(string path) => Directory.Exists(new QueueLayout(path).EnvDir);

    public string QueuePath => Layout.Root;
    internal QueueLayout Layout { get; }
    internal TimeProvider Clock => _options.Clock;
    internal GroupCommitter Committer => _committer.Value;
    /// <summary>The summary index (Linux); null elsewhere, where listings read every envelope.</summary>
    internal QueueIndex? Index { get; }
    /// <summary>Files of messages that left the queue, written again for new ones (Linux with syncfs); null elsewhere.</summary>
    internal SpareFiles? Spare { get; }

    /// <summary>
    /// Opens <paramref name="path"/> (which must not exist) for writing as a new file: a spare file
    /// when one is ready (<paramref name="reused"/>: its old length stays until the writer sets
    /// it), else a new 0600 file.
    /// </summary>
    /// <exception cref="IOException">
    /// The path exists, the file cannot be made, or the spare file moved there cannot be opened
    /// (another owner's, or a sweep holds it that instant): the caller tries another name. No new
    /// file is made at a path a sweep may be about to unlink.
    /// </exception>
    internal FileStream CreateFile(string path, FileShare share, int bufferSize, out bool reused)
    {
        if (Spare is { } spare && spare.TryTake(path))
        {
            try
            {
                reused = true;
                return DurableFile.OpenPrivate(path, FileMode.Open, FileAccess.Write, share, bufferSize);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                try { File.Delete(path); } catch (Exception ex2) when (ex2 is IOException or UnauthorizedAccessException) { }
                throw new IOException($"The spare file moved to {path} cannot be written: {ex.Message}", ex);
            }
        }
        reused = false;
        return DurableFile.OpenPrivate(path, FileMode.CreateNew, FileAccess.Write, share, bufferSize);
    }

    /// <summary>
    /// Removes the files of a message whose envelope has left env/: into spare/ when
    /// <paramref name="reuse"/> (nothing can still be reading them) and the body is small, else unlinked.
    /// </summary>
    private void DropFiles(string id, string? envelopePath, long size, bool reuse)
    {
        if (reuse && Spare is { } spare)
        {
            if (envelopePath is not null) spare.Give(envelopePath, id + ".e", SpareFiles.EnvelopeLength);
            if (size <= SpareFiles.MaxBody) { spare.Give(Layout.Mess(id), id + ".m", size); return; }
        }
        else if (envelopePath is not null) File.Delete(envelopePath);
        File.Delete(Layout.Mess(id));
    }

    // ---------------------------------------------------------------- enqueue

    /// <summary>Starts a new message; write its body, then commit it (or dispose to abandon it).</summary>
    /// <exception cref="QueueFailureException">The spool cannot be written (transient).</exception>
    public IncomingMessage CreateMessage()
    {
        for (int attempt = 0; ; attempt++)
        {
            string id = QueueId.New(Clock.GetUtcNow());
            string path = Layout.Mess(id);
            try
            {
                var file = CreateFile(path, FileShare.None, 16 * 1024, out bool reused);
                // A sweep could have taken the file between its creation and our lock: then it is gone.
                if (File.Exists(path)) return new IncomingMessage(this, id, file, reused);
                file.Dispose();
            }
            catch (IOException) when (attempt < 3 && Directory.Exists(Layout.MessDir))
            {
                // Name taken or locked by a sweep in that instant: try another id.
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw QueueFailureException.Transient($"Cannot write to the queue at {QueuePath}: {ex.Message}", ex);
            }
            if (attempt >= 3) throw QueueFailureException.Transient($"Cannot create a message file in {Layout.MessDir}.");
        }
    }

    /// <summary>Enqueues <paramref name="body"/> (already in stored form: CRLF, not dot-stuffed) with <paramref name="envelope"/>.</summary>
    /// <returns>The queue id, once the message is durable.</returns>
    /// <exception cref="QueueFailureException">Nothing was queued.</exception>
    public async Task<string> EnqueueAsync(Envelope envelope, Stream body, CancellationToken cancellationToken = default)
    {
        await using var message = CreateMessage();
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int read;
            // Errors reading the source propagate as they are; errors writing the spool are classified.
            while ((read = await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                try
                {
                    await message.Body.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                }
                catch (IOException ex)
                {
                    throw QueueFailureException.Transient($"Cannot write to the queue: {ex.Message}", ex);
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        return await message.CommitAsync(envelope, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The scheduler of a server running in this process on this store: told of every message
    /// this process commits (the envelope as committed, and its file's modification time when
    /// known), so that it plans the message at once instead of scanning env/ for it. While it is
    /// set, this process's commits do not pull the trigger (they would wake only that scheduler).
    /// </summary>
    internal Action<Envelope, DateTime?>? CommitObserver { get; set; }

    internal void OnCommitted(Envelope envelope, FileFacts? written = null, byte[]? json = null)
    {
        if (written is { } file && json is not null && OperatingSystem.IsLinux()) Index?.Written([(envelope.Id, file, json)]);
        var now = Clock.GetUtcNow();
        try
        {
            AppendJournal(envelope.Id, [JournalEvents.Received(envelope), JournalEvents.Queued(envelope, now)], envelope);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The message is committed; a journal that cannot be written must not un-accept it.
        }
        if (CommitObserver is { } observer)
        {
            try
            {
                observer(envelope, written is { ModifiedNanoseconds: > 0 } f ? DateTime.UnixEpoch.AddTicks(f.ModifiedNanoseconds / 100) : null);
                return;
            }
            catch (Exception)
            {
                // The message is committed and must be acknowledged: the server's next scan finds it.
            }
        }
        QueueTrigger.Pull(QueuePath);
    }

    // ---------------------------------------------------------------- reading

    /// <summary>The committed envelope of <paramref name="id"/>, or null when it is not queued.</summary>
    public Envelope? ReadEnvelope(string id)
    {
        if (!QueueId.IsValid(id)) return null;
        try
        {
            var envelope = QueueJson.Deserialize(DurableFile.ReadSmallFile(Layout.Env(id)));
            // A file read just as its message left and its spare file was written again is not this message.
            if (envelope is not null && envelope.Id is { Length: > 0 } named && named != id) return null;
            return ApplyRelease(envelope, id, released: null);
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    /// <summary>
    /// A release is a marker, released/&lt;id&gt; (a hard link to the envelope), beside an envelope
    /// that still says held: releasing many messages is then a directory entry each, not an
    /// envelope rewrite each. Whoever reads the envelope sees the release applied
    /// (<see cref="ReleaseRecipient"/>), and the next write of the envelope makes it so in the
    /// file and removes the marker. Only an envelope with a held recipient looks for a marker:
    /// other reads cost nothing more.
    /// </summary>
    /// <param name="released">The ids with a marker, when the caller listed released/; null to look for this one.</param>
    private Envelope? ApplyRelease(Envelope? envelope, string id, IReadOnlySet<string>? released)
    {
        if (envelope is null || !envelope.Recipients.Any(r => r.State == RecipientState.Held)) return envelope;
        if (released is null ? !File.Exists(Layout.Released(id)) : !released.Contains(id)) return envelope;
        foreach (var r in envelope.Recipients) ReleaseRecipient(r);
        envelope.ReleasePending = true;
        return envelope;
    }

    /// <summary>The ids with a release marker (one readdir; none in the usual case).</summary>
    internal HashSet<string> ReleasedIds() => new(SafeNames(Layout.ReleasedDir), StringComparer.Ordinal);

    /// <summary>
    /// The message just committed with <paramref name="committed"/>, as listed now; when a server
    /// has already delivered it and it left the queue, as it was committed.
    /// </summary>
    public QueuedMail Committed(Envelope committed) =>
        Find(committed.Id) ?? new QueuedMail(committed, active: false, Clock.GetUtcNow(), QueuePath);

    /// <summary>The message as listed, or null when it is not queued.</summary>
    public QueuedMail? Find(string id)
    {
        var envelope = ReadEnvelope(id);
        return envelope is null ? null : new QueuedMail(envelope, File.Exists(Layout.Active(id)), Clock.GetUtcNow(), QueuePath);
    }

    /// <summary>Opens the stored body for reading.</summary>
    /// <exception cref="QueuedMessageNotFoundException">Not queued.</exception>
    public Stream OpenBody(string id)
    {
        if (ReadEnvelope(id) is null) throw new QueuedMessageNotFoundException(id);
        var body = OpenBodyForDelivery(id) ?? throw new QueuedMessageNotFoundException(id);
        // A body read whole (every body that can become a spare file is) is kept only when its
        // envelope is still there after the read: a body becomes a spare file, and so another
        // message's, only once its envelope is gone.
        if (body is MemoryStream && !File.Exists(Layout.Env(id)))
        {
            body.Dispose();
            throw new QueuedMessageNotFoundException(id);
        }
        return body;
    }

    /// <summary>
    /// Every queued message matching <paramref name="filter"/>, oldest first. Reads envelopes only,
    /// never bodies; safe while other processes enqueue and deliver (each envelope is read whole).
    /// </summary>
    public IReadOnlyList<QueuedMail> List(QueueFilter? filter = null) =>
        OperatingSystem.IsLinux() && Index is not null && filter?.Ids is null ? Stream(filter).ToList() : ListEachFile(filter);

    /// <summary>
    /// <see cref="List"/> as a stream, oldest first: the summary index is read in one pass (memory
    /// holds the queue's ids, not its envelopes), so the first messages come at once and a long
    /// queue can be written out as it is read.
    /// </summary>
    public IEnumerable<QueuedMail> Stream(QueueFilter? filter = null)
    {
        if (!OperatingSystem.IsLinux() || Index is null || filter?.Ids is not null)
        {
            foreach (var m in ListEachFile(filter)) yield return m;
            yield break;
        }
        var now = Clock.GetUtcNow();
        var active = new HashSet<string>(SafeNames(Layout.ActiveDir), StringComparer.Ordinal);
        var released = ReleasedIds();
        foreach (var envelope in Index.Read(PresentEnvelopes(), ReadEnvelopeQuietly, filter?.Needle()))
        {
            ApplyRelease(envelope, envelope.Id, released);
            var mail = new QueuedMail(envelope, active.Contains(envelope.Id), now, QueuePath);
            if (filter is null || filter.Matches(mail)) yield return mail;
        }
    }

    /// <summary>env/'s ids with their inodes, sorted (one readdir, no stat).</summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private List<(string Id, ulong Inode)> PresentEnvelopes()
    {
        var entries = Posix.ReadDirectory(Layout.EnvDir);
        // Sorted in place by number (QueueId.TryGetSortKey), not by string: 100,000 ids sort in a few ms.
        var keys = new UInt128[entries.Count];
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(entries);
        int count = 0;
        for (int i = 0; i < span.Length; i++)
            if (QueueId.TryGetSortKey(span[i].Name, out keys[count])) span[count++] = span[i];
        entries.RemoveRange(count, entries.Count - count);
        keys.AsSpan(0, count).Sort(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(entries));
        return entries;
    }

    private Envelope? ReadEnvelopeQuietly(string id)
    {
        try { return ReadEnvelope(id); }
        catch (Exception ex) when (ex is JsonException or InvalidDataException or IOException) { return null; } // unreadable: left out, as before
    }

    /// <summary>
    /// Rewrites the summary index as a sorted snapshot (docs/queue.md, "The summary index");
    /// <paramref name="verify"/> checks every line against a full stat of its envelope, as after a crash.
    /// </summary>
    /// <returns>Lines kept and envelopes read again; null without an index, or while another process compacts it.</returns>
    public (int Kept, int Read)? CompactIndex(bool verify = false) =>
        OperatingSystem.IsLinux() && Index is not null ? Index.Compact(PresentEnvelopes(), verify) : null;

    /// <summary>
    /// Checks the summary index line by line against full stats of the envelopes (a crash or a
    /// power loss can have lost appends) and rewrites it sorted; what a starting server does.
    /// Never throws for I/O: listings read env/ wherever the index is stale.
    /// </summary>
    public void VerifyIndex()
    {
        try { CompactIndex(verify: true); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>Whether the summary index has grown enough since its last compaction for another to pay.</summary>
    public bool IndexNeedsCompaction() => OperatingSystem.IsLinux() && Index is not null && Index.NeedsCompaction();

    /// <summary>Every queued message read from its own envelope file: where there is no index, for a list of ids, and for tests that check the index.</summary>
    internal IReadOnlyList<QueuedMail> ListEachFile(QueueFilter? filter)
    {
        var now = Clock.GetUtcNow();
        var active = new HashSet<string>(SafeNames(Layout.ActiveDir), StringComparer.Ordinal);
        string[] ids = filter?.Ids is { } wanted
            ? wanted.Where(QueueId.IsValid).Distinct().ToArray()
            : SafeNames(Layout.EnvDir).Where(QueueId.IsValid).ToArray();
        Array.Sort(ids, StringComparer.Ordinal); // ids sort by arrival; results keep this order

        var found = new QueuedMail?[ids.Length];
        Parallel.For(0, ids.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            Envelope? envelope;
            try { envelope = ReadEnvelope(ids[i]); }
            catch (Exception ex) when (ex is JsonException or InvalidDataException or IOException) { envelope = null; }
            if (envelope is null) return; // removed meanwhile, or unreadable
            var mail = new QueuedMail(envelope, active.Contains(ids[i]), now, QueuePath);
            if (filter is null || filter.Matches(mail)) found[i] = mail;
        });

        var result = new List<QueuedMail>(ids.Length);
        foreach (var m in found) if (m is not null) result.Add(m);
        return result;
    }

    /// <summary>How many messages are queued (a directory listing: no envelope is read).</summary>
    public int Count() => EnvelopeStamps().Count;

    /// <summary>
    /// Every committed envelope's id with the time its file was last replaced: a scheduler re-reads
    /// only the envelopes whose stamp changed since it last looked.
    /// </summary>
    internal List<(string Id, DateTime Stamp)> EnvelopeStamps()
    {
        if (!Directory.Exists(Layout.EnvDir)) return [];
        var result = new List<(string, DateTime)>();
        var entries = new System.IO.Enumeration.FileSystemEnumerable<(string, DateTime)>(Layout.EnvDir,
            (ref System.IO.Enumeration.FileSystemEntry entry) => (entry.FileName.ToString(), entry.LastWriteTimeUtc.UtcDateTime),
            new EnumerationOptions { IgnoreInaccessible = true, AttributesToSkip = 0 })
        {
            ShouldIncludePredicate = (ref System.IO.Enumeration.FileSystemEntry entry) => !entry.IsDirectory,
        };
        foreach (var (id, stamp) in entries)
            if (QueueId.IsValid(id)) result.Add((id, stamp));
        return result;
    }

    /// <summary>File names (not paths) in a directory; none when it does not exist.</summary>
    private static IEnumerable<string> SafeNames(string directory)
    {
        if (!Directory.Exists(directory)) return [];
        return new System.IO.Enumeration.FileSystemEnumerable<string>(directory,
            (ref System.IO.Enumeration.FileSystemEntry entry) => entry.FileName.ToString(),
            new EnumerationOptions { IgnoreInaccessible = true, AttributesToSkip = 0 })
        {
            ShouldIncludePredicate = (ref System.IO.Enumeration.FileSystemEntry entry) => !entry.IsDirectory,
        };
    }

    // ---------------------------------------------------------------- operator actions

    /// <summary>Holds every recipient still waiting: not scheduled, never expires, until released.</summary>
    /// <exception cref="QueuedMessageNotFoundException">Not queued.</exception>
    public Task<QueuedMail> HoldAsync(string id, CancellationToken cancellationToken = default) =>
        MutateAsync(id, JournalEventType.Held, HoldRecipient, cancellationToken);

    private static bool HoldRecipient(EnvelopeRecipient r)
    {
        if (r.State is not (RecipientState.Pending or RecipientState.Deferred)) return false;
        r.State = RecipientState.Held;
        return true;
    }

    /// <summary>Releases held recipients; they are due at once.</summary>
    /// <exception cref="QueuedMessageNotFoundException">Not queued.</exception>
    public async Task<QueuedMail> ReleaseAsync(string id, CancellationToken cancellationToken = default)
    {
        if (!QueueId.IsValid(id)) throw new QueuedMessageNotFoundException(id);
        Envelope envelope;
        bool changed;
        using (await LockAsync(id, cancellationToken).ConfigureAwait(false))
        {
            envelope = ReadEnvelope(id) ?? throw new QueuedMessageNotFoundException(id);
            changed = ReleaseLocked([envelope]) > 0;
        }
        if (changed) QueueTrigger.Pull(QueuePath);
        return new QueuedMail(envelope, File.Exists(Layout.Active(id)), Clock.GetUtcNow(), QueuePath);
    }

    internal static bool ReleaseRecipient(EnvelopeRecipient r)
    {
        if (r.State != RecipientState.Held) return false;
        r.State = r.Attempts > 0 ? RecipientState.Deferred : RecipientState.Pending;
        r.NextAttempt = null;
        return true;
    }

    /// <summary>Makes deferred recipients due now (what a flush does before the delivery pass).</summary>
    /// <exception cref="QueuedMessageNotFoundException">Not queued.</exception>
    public Task<QueuedMail> MakeDueAsync(string id, CancellationToken cancellationToken = default)
    {
        var now = Clock.GetUtcNow();
        return MutateAsync(id, JournalEventType.MadeDue, r =>
        {
            if (r.State is not (RecipientState.Pending or RecipientState.Deferred) || r.NextAttempt is null || r.NextAttempt <= now) return false;
            r.NextAttempt = null;
            return true;
        }, cancellationToken);
    }

    /// <summary>
    /// Removes the message from the queue: it is gone the instant its envelope is unlinked.
    /// A delivery in flight finishes, and its results are dropped.
    /// </summary>
    /// <returns>The message as it was just before removal.</returns>
    /// <exception cref="QueuedMessageNotFoundException">Not queued.</exception>
    public async Task<QueuedMail> RemoveAsync(string id, string? reason = null, CancellationToken cancellationToken = default)
    {
        QueuedMail before;
        using (await LockAsync(id, cancellationToken).ConfigureAwait(false))
        {
            before = Find(id) ?? throw new QueuedMessageNotFoundException(id);
            var envelope = ReadEnvelope(id);
            if (envelope is not null) ForgetRelease(envelope);
            bool spare = Spare is not null && envelope is not null;
            if (spare) Spare!.Give(Layout.Env(id), id + ".e", SpareFiles.EnvelopeLength);
            else File.Delete(Layout.Env(id));
            DurableFile.SyncDirectory(Layout.EnvDir);
            // A delivery in flight may be reading the body: then it is unlinked, never written again.
            // (One that starts now finds no envelope to mark active.)
            DropFiles(id, envelopePath: null, envelope?.Size ?? long.MaxValue, reuse: spare && !File.Exists(Layout.Active(id)));
            AppendJournal(id, [JournalEvents.Operator(JournalEventType.Removed, Clock.GetUtcNow(), detail: reason)], envelope);
        }
        QueueTrigger.Pull(QueuePath);
        return before;
    }

    private async Task<QueuedMail> MutateAsync(string id, JournalEventType eventType, Func<EnvelopeRecipient, bool> change, CancellationToken cancellationToken)
    {
        if (!QueueId.IsValid(id)) throw new QueuedMessageNotFoundException(id);
        Envelope envelope;
        bool changed;
        using (await LockAsync(id, cancellationToken).ConfigureAwait(false))
        {
            envelope = ReadEnvelope(id) ?? throw new QueuedMessageNotFoundException(id);
            var now = Clock.GetUtcNow();
            var touched = Change(envelope, change, now);
            changed = touched.Count > 0;
            if (changed)
            {
                WriteEnvelopeLocked(envelope);
                AppendJournal(id, touched.Select(a => JournalEvents.Operator(eventType, now, a)).ToArray(), envelope);
            }
        }
        if (changed) QueueTrigger.Pull(QueuePath);
        return new QueuedMail(envelope, File.Exists(Layout.Active(id)), Clock.GetUtcNow(), QueuePath);
    }

    /// <summary>Applies <paramref name="change"/> to each recipient; the addresses it changed (stamped <paramref name="now"/>).</summary>
    private static List<string> Change(Envelope envelope, Func<EnvelopeRecipient, bool> change, DateTimeOffset now)
    {
        var touched = new List<string>();
        foreach (var r in envelope.Recipients)
        {
            if (!change(r)) continue;
            r.Updated = now;
            touched.Add(r.Address);
        }
        return touched;
    }

    /// <summary>
    /// Holds (<paramref name="hold"/>) or releases every message of <paramref name="ids"/> at once,
    /// as <c>postsuper -h/-H ALL</c> does: in batches, each written with one file-system sync and
    /// one directory sync instead of three fsyncs per message, and one wake-up of a server per batch.
    /// Ids no longer queued are skipped.
    /// </summary>
    /// <param name="ids">The messages; null for every queued message.</param>
    /// <returns>How many messages changed.</returns>
    public async Task<int> HoldManyAsync(IEnumerable<string>? ids, bool hold, CancellationToken cancellationToken = default)
    {
        int changed = 0;
        ids ??= SafeNames(Layout.EnvDir).ToList(); // names only: no stat per message
        foreach (var batch in ids.Where(QueueId.IsValid).Distinct(StringComparer.Ordinal).Chunk(512))
        {
            int done;
            using (await _locks.AcquireManyAsync(batch, cancellationToken).ConfigureAwait(false))
            {
                var envelopes = batch.Select(ReadEnvelope).OfType<Envelope>().ToList();
                done = hold ? HoldLocked(envelopes) : ReleaseLocked(envelopes);
            }
            changed += done;
            if (done > 0) QueueTrigger.Pull(QueuePath);
        }
        return changed;
    }

    /// <summary>Holds the envelopes' waiting recipients: each changed envelope is rewritten (one file-system sync for all). Caller holds the ids' locks.</summary>
    private int HoldLocked(IReadOnlyList<Envelope> envelopes)
    {
        var now = Clock.GetUtcNow();
        var changed = new List<(Envelope Envelope, List<string> Touched)>();
        foreach (var envelope in envelopes)
        {
            var touched = Change(envelope, HoldRecipient, now);
            if (touched.Count > 0) changed.Add((envelope, touched));
        }
        if (changed.Count == 0) return 0;
        WriteEnvelopesLocked(changed.Select(e => e.Envelope).ToList());
        AppendJournals(changed.Select(e => (e.Envelope.Id, Operator(JournalEventType.Held, now, e.Touched), (Envelope?)e.Envelope)).ToList());
        return changed.Count;
    }

    /// <summary>
    /// Releases the envelopes' held recipients with a marker each (see <see cref="ApplyRelease"/>)
    /// and one sync of released/; the envelopes given are changed as readers will now see them.
    /// Caller holds the ids' locks.
    /// </summary>
    private int ReleaseLocked(IReadOnlyList<Envelope> envelopes)
    {
        var now = Clock.GetUtcNow();
        var changed = new List<(Envelope Envelope, List<string> Touched)>();
        foreach (var envelope in envelopes)
        {
            var touched = envelope.Recipients.Where(r => r.State == RecipientState.Held).Select(r => r.Address).ToList();
            if (touched.Count == 0) continue; // not held, or released already
            DurableFile.Link(Layout.Env(envelope.Id), Layout.Released(envelope.Id)); // a name, not a new inode
            foreach (var r in envelope.Recipients) ReleaseRecipient(r);
            envelope.ReleasePending = true;
            changed.Add((envelope, touched));
        }
        if (changed.Count == 0) return 0;
        DurableFile.SyncDirectory(Layout.ReleasedDir);
        AppendJournals(changed.Select(e => (e.Envelope.Id, Operator(JournalEventType.Released, now, e.Touched), (Envelope?)e.Envelope)).ToList());
        return changed.Count;
    }

    private static IReadOnlyList<JournalEvent> Operator(JournalEventType type, DateTimeOffset now, IEnumerable<string> recipients) =>
        recipients.Select(a => JournalEvents.Operator(type, now, a)).ToArray();

    internal Task<IDisposable> LockAsync(string id, CancellationToken cancellationToken) => _locks.AcquireAsync(id, cancellationToken);

    /// <summary>Replaces env/&lt;id&gt; durably. Caller holds the id's lock.</summary>
    internal void WriteEnvelopeLocked(Envelope envelope) => WriteEnvelopesLocked([envelope]);

    /// <summary>
    /// Replaces the envelopes' files durably: each is written to tmp/, made durable (one fsync, or
    /// for several one syncfs(2) on Linux), renamed over env/&lt;id&gt;, and then env/ is fsynced
    /// once. Caller holds the ids' locks.
    /// </summary>
    private void WriteEnvelopesLocked(IReadOnlyList<Envelope> envelopes)
    {
        bool batch = envelopes.Count > 1 && OperatingSystem.IsLinux();
        var open = new List<(Envelope Envelope, string Tmp, FileStream File, byte[] Json)>(envelopes.Count);
        var renamed = new List<(string Id, FileFacts File, byte[] Json)>(envelopes.Count);
        try
        {
            foreach (var envelope in envelopes)
            {
                string tmp = Layout.Tmp(envelope.Id) + "." + Interlocked.Increment(ref _tmpCounter).ToString("x");
                // Kept open (and so locked against the sweep) until renamed; FileShare.Delete lets
                // Windows rename an open file.
                var f = DurableFile.OpenPrivate(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.Delete);
                byte[] json = QueueJson.Serialize(envelope);
                open.Add((envelope, tmp, f, json));
                f.Write(json);
                f.Flush(flushToDisk: !batch);
            }
            if (batch)
            {
                using var dir = new DurableFile.DirectoryHandle(Layout.TmpDir);
                GroupCommitter.SyncFileSystem(dir, Spare);
            }
            foreach (var (envelope, tmp, f, json) in open)
            {
                FileFacts? written = OperatingSystem.IsLinux() ? Posix.FStat(f.SafeFileHandle) : null;
                DurableFile.Rename(tmp, Layout.Env(envelope.Id));
                if (written is { } facts) renamed.Add((envelope.Id, facts, json));
            }
        }
        catch
        {
            foreach (var (_, tmp, _, _) in open)
                try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
        finally
        {
            foreach (var (_, _, f, _) in open) f.Dispose();
        }
        DurableFile.SyncDirectory(Layout.EnvDir);
        if (OperatingSystem.IsLinux()) Index?.Written(renamed);
        // The file now says what a release marker said (or a hold replaced the release): the marker goes.
        foreach (var envelope in envelopes)
            if (envelope.ReleasePending || envelope.Recipients.Any(r => r.State == RecipientState.Held)) ForgetRelease(envelope);
    }

    private void ForgetRelease(Envelope envelope)
    {
        envelope.ReleasePending = false;
        try { File.Delete(Layout.Released(envelope.Id)); }
        catch (IOException) { } // a marker left over does nothing once the envelope has no held recipient; the sweep removes it with its message
    }

    // ---------------------------------------------------------------- delivery (Delivery/ records its results here)

    /// <summary>
    /// Stored messages up to this size are read whole for a delivery (one open, one read) and sent
    /// from memory; at least <see cref="SpareFiles.MaxBody"/>, so that no reader streams a body that can become a spare file.
    /// </summary>
    internal const int InMemoryBody = 64 * 1024;

    /// <summary>
    /// The stored body for a delivery that has just read the envelope, seekable: in memory when it
    /// is small (<see cref="InMemoryBody"/>), else the open file. Null when the message is gone.
    /// </summary>
    internal Stream? OpenBodyForDelivery(string id)
    {
        try
        {
            if (DurableFile.ReadWholeFile(Layout.Mess(id), InMemoryBody) is { } whole)
                return new MemoryStream(whole, 0, whole.Length, writable: false, publiclyVisible: true);
            return DurableFile.OpenCommittedForReading(Layout.Mess(id), 16 * 1024);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Marks a delivery of <paramref name="id"/> as in flight: operators see it Active, and a crash leaves the marker for the sweep.</summary>
    internal void MarkActive(string id)
    {
        // A second name of the envelope (no new inode); a message removed meanwhile has none.
        try { DurableFile.Link(Layout.Env(id), Layout.Active(id)); }
        catch (FileNotFoundException) { }
    }

    internal void ClearActive(string id)
    {
        try { File.Delete(Layout.Active(id)); }
        catch (IOException) { }
    }

    /// <summary>
    /// Applies a delivery's results to the current envelope under the id's lock: <paramref name="apply"/>
    /// changes recipients and returns the events to journal. When every recipient is then final and
    /// <paramref name="reportDue"/> says no report is owed, the message leaves the queue at once;
    /// otherwise the envelope is replaced durably, marked <see cref="Envelope.ReportDue"/> when it is
    /// finished, and <see cref="FinishAsync"/> completes it outside the lock. The unlinks of a
    /// finished message are not fsynced: a crash may bring it back, and it is delivered again (at
    /// least once, as qmail).
    /// </summary>
    /// <returns>The envelope as recorded, or null when the message was removed meanwhile (nothing is recorded).</returns>
    /// <param name="nothingReads">
    /// Asked when the message leaves the queue: true when no delivery of it can still be reading its
    /// body, so that its files may become spare files. Without it they are unlinked.
    /// </param>
    internal async Task<Envelope?> RecordAsync(string id, Func<Envelope, IReadOnlyList<JournalEvent>> apply,
        Func<Envelope, bool> reportDue, CancellationToken cancellationToken, Func<bool>? nothingReads = null)
    {
        using (await LockAsync(id, cancellationToken).ConfigureAwait(false))
        {
            var envelope = ReadEnvelope(id);
            if (envelope is null) return null;
            var events = apply(envelope);
            bool finished = envelope.Recipients.All(r => r.IsFinal);
            if (finished && !envelope.ReportDue) envelope.ReportDue = reportDue(envelope);
            if (finished && !envelope.ReportDue)
            {
                // The journal first: whoever sees the message gone (a flush waiting for its
                // outcome) must find why in the journal. A crash between the two delivers it again.
                if (events.Count > 0) AppendJournal(id, events, envelope);
                Retire(envelope, nothingReads?.Invoke() == true);
            }
            else
            {
                WriteEnvelopeLocked(envelope);
                if (events.Count > 0) AppendJournal(id, events, envelope);
            }
            return envelope;
        }
    }

    /// <summary>
    /// The repeatable last step of a finished message: queue its report when one is due (with no
    /// lock held: building and fsyncing a report must not block operators or deliveries), then
    /// retire it. A crash between the two repeats the step: the report may go twice, never zero times.
    /// </summary>
    /// <param name="queueReport">Queues the report of a finished envelope (BounceBuilder).</param>
    /// <param name="nothingReads">As for <see cref="RecordAsync"/>.</param>
    internal async Task FinishAsync(string id, Func<Envelope, CancellationToken, Task> queueReport, CancellationToken cancellationToken, Func<bool>? nothingReads = null)
    {
        var envelope = ReadEnvelope(id);
        if (envelope is null || !envelope.Recipients.All(r => r.IsFinal)) return;
        if (envelope.ReportDue) await queueReport(envelope, cancellationToken).ConfigureAwait(false);
        using (await LockAsync(id, cancellationToken).ConfigureAwait(false))
        {
            var current = ReadEnvelope(id);
            if (current is not null && current.Recipients.All(r => r.IsFinal)) Retire(current, nothingReads?.Invoke() == true);
        }
    }

    /// <summary>Removes a finished message; its files become spare files when <paramref name="reuse"/>. Caller holds the id's lock.</summary>
    private void Retire(Envelope envelope, bool reuse)
    {
        if (envelope.ReleasePending) ForgetRelease(envelope);
        DropFiles(envelope.Id, Layout.Env(envelope.Id), envelope.Size, reuse);
    }

    // ---------------------------------------------------------------- history

    /// <summary>
    /// Records events of a message's history in the mail log (docs/logging.md), with the message's
    /// sender, Message-ID and recipients when <paramref name="message"/> is given (else read from
    /// the queue), and tells <see cref="Logged"/>. The log is the history a trace reads: it outlives
    /// the message (JournalRetention), and no file is made per message. One O_APPEND write, no lock.
    /// </summary>
    public void AppendJournal(string id, IReadOnlyList<JournalEvent> events, Envelope? message = null) =>
        AppendJournals([(id, events, message)]);

    /// <summary>Several messages' <see cref="AppendJournal"/> with one append to the mail log.</summary>
    private void AppendJournals(IReadOnlyList<(string Id, IReadOnlyList<JournalEvent> Events, Envelope? Message)> journals)
    {
        var entries = new List<MailLogEntry>();
        foreach (var (id, events, known) in journals)
        {
            if (events.Count == 0) continue;
            var message = known;
            if (message is null)
            {
                try { message = ReadEnvelope(id); }
                catch (Exception ex) when (ex is IOException or JsonException or InvalidDataException) { }
            }
            entries.AddRange(events.Select(e => MailLogEntry.From(id, e, message)));
        }
        if (entries.Count == 0) return;
        try { MailLog.Append(Layout.LogDir, entries); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A full disk or a lost permission: the story misses these lines; the queue's own
            // files, which say what is owed, were written (or failed) on their own.
        }
        if (Logged is { } logged)
            foreach (var entry in entries) logged(entry);
    }

    /// <summary>Every mail log line this instance writes, as it is written (a server logs them).</summary>
    public event Action<MailLogEntry>? Logged;

    /// <summary>
    /// The message's history, oldest first; empty when none is known: its lines in the mail log,
    /// after those of its journal file when the queue is older than that (journal/, read only).
    /// </summary>
    public IReadOnlyList<JournalEvent> ReadJournal(string id) =>
        QueueId.IsValid(id) ? History(id, MailLog.Search(QueuePath, new MailLogQuery { Id = id }).Reverse()) : [];

    /// <summary><see cref="ReadJournal"/> of many messages, in one pass over the mail log.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<JournalEvent>> ReadJournals(IEnumerable<string> ids)
    {
        var wanted = ids.Where(QueueId.IsValid).ToHashSet(StringComparer.Ordinal);
        var logged = MailLog.ReadIds(Layout.LogDir, wanted);
        return wanted.ToDictionary(id => id, id => History(id, logged.GetValueOrDefault(id) ?? []), StringComparer.Ordinal);
    }

    /// <summary>A journal file's events (a queue older than the log's history), then the log's lines (oldest first) after its last.</summary>
    private IReadOnlyList<JournalEvent> History(string id, IEnumerable<MailLogEntry> logged)
    {
        var events = ReadJournalFile(id);
        var before = events.Count > 0 ? events[^1].Time : DateTimeOffset.MinValue; // the log repeats what a journal has
        events.AddRange(logged.Where(e => e.Time > before).Select(e => e.ToEvent()));
        return events;
    }

    /// <summary>The events of a journal file, as queues kept them per message before the mail log did.</summary>
    private List<JournalEvent> ReadJournalFile(string id)
    {
        string[] lines;
        try { lines = File.ReadAllLines(Layout.Journal(id), Encoding.UTF8); }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException) { return []; }
        var events = new List<JournalEvent>(lines.Length);
        foreach (var line in lines)
        {
            if (line.Length == 0) continue;
            try
            {
                if (JsonSerializer.Deserialize(line, QueueJsonContext.Default.JournalEvent) is { } e) events.Add(e);
            }
            catch (JsonException)
            {
                // A line cut short by a crash; the rest of the journal is still good.
            }
        }
        return events;
    }

    /// <summary>Queue ids whose message carried this Message-ID (with or without angle brackets), as the mail log (or an old journal) has it.</summary>
    public IReadOnlyList<string> FindByMessageId(string messageId)
    {
        string wanted = messageId.Trim().Trim('<', '>');
        bool Same(string? mid) => mid is not null && string.Equals(mid.Trim().Trim('<', '>'), wanted, StringComparison.Ordinal);
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var e in MailLog.Search(QueuePath, new MailLogQuery { MessageId = wanted, Events = [JournalEventType.Received] }))
            if (Same(e.MessageId) && QueueId.IsValid(e.Id)) ids.Add(e.Id);
        foreach (var id in SafeNames(Layout.JournalDir).Where(QueueId.IsValid))
            if (Same(ReadJournalFile(id).FirstOrDefault(e => e.Event == JournalEventType.Received)?.MessageId)) ids.Add(id);
        return ids.ToList();
    }

    // ---------------------------------------------------------------- serving and sweeping

    /// <summary>
    /// Takes the exclusive right to serve (deliver from) this queue; null when another process
    /// has it. Dispose to give it up. The lock dies with the process.
    /// </summary>
    public IDisposable? TryAcquireServerLock()
    {
        try
        {
            var f = DurableFile.OpenPrivate(Layout.ServerLock, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            f.SetLength(0);
            f.Write(Encoding.ASCII.GetBytes(Environment.ProcessId + "\n"));
            f.Flush();
            return f;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>True while a process holds the server lock of the queue at <paramref name="path"/>; creates nothing.</summary>
    public static bool IsServedAt(string path)
    {
        try
        {
            using (new FileStream(new QueueLayout(path).ServerLock, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1)) { }
            return false;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return false;
        }
        catch (IOException)
        {
            return true; // locked by its server
        }
    }

    /// <summary>True while some process (this one included) holds the server lock.</summary>
    public bool IsServed() => IsServedAt(QueuePath);

    /// <summary>
    /// Removes crash leftovers (docs/queue.md, "The sweep"). Safe at any time from any process:
    /// it only removes files no live writer holds. With <paramref name="asServer"/> (the caller
    /// holds the server lock) it also clears delivery markers and journals possible duplicates,
    /// and checks the summary index line by line unless <paramref name="verifyIndex"/> is false
    /// (a starting server does that in the background, so that delivery starts at once).
    /// </summary>
    public SweepReport Sweep(bool asServer, bool verifyIndex = true)
    {
        int tmpRemoved = 0, orphans = 0, expired = 0;
        foreach (var name in SafeNames(Layout.TmpDir).ToList())
            if (TryRemoveUnheld(Path.Combine(Layout.TmpDir, name), envelopeToKeep: null)) tmpRemoved++;

        var committed = new HashSet<string>(SafeNames(Layout.EnvDir), StringComparer.Ordinal);
        foreach (var id in SafeNames(Layout.MessDir).ToList())
            if (!committed.Contains(id) && TryRemoveUnheld(Path.Combine(Layout.MessDir, id), Path.Combine(Layout.EnvDir, id))) orphans++;

        var interrupted = new List<string>();
        if (asServer)
        {
            var now = Clock.GetUtcNow();
            foreach (var id in SafeNames(Layout.ActiveDir).ToList())
            {
                if (QueueId.IsValid(id) && committed.Contains(id))
                {
                    interrupted.Add(id);
                    AppendJournal(id, [JournalEvents.Note(JournalEventType.PossibleDuplicate, now,
                        "a delivery was in flight when the server stopped; recipients not recorded as done are tried again")]);
                }
                File.Delete(Path.Combine(Layout.ActiveDir, id));
            }
        }

        // Release markers of messages that left the queue (a crash between the two unlinks).
        foreach (var id in SafeNames(Layout.ReleasedDir).ToList())
            if (!committed.Contains(id) && !File.Exists(Path.Combine(Layout.EnvDir, id)))
                File.Delete(Path.Combine(Layout.ReleasedDir, id));

        // A starting server checks the summary index line by line (a crash or a power loss can
        // have lost appends) and rewrites it sorted.
        if (asServer && verifyIndex) VerifyIndex();
        var cutoff = Clock.GetUtcNow() - _options.JournalRetention;
        MailLog.Expire(Layout.LogDir, cutoff);
        // Journal files of a queue from before the mail log held each message's history.
        foreach (var id in SafeNames(Layout.JournalDir).ToList())
        {
            if (committed.Contains(id)) continue;
            string path = Path.Combine(Layout.JournalDir, id);
            if (File.GetLastWriteTimeUtc(path) < cutoff.UtcDateTime)
            {
                File.Delete(path);
                expired++;
            }
        }
        return new SweepReport(tmpRemoved, orphans, interrupted, expired) { Queued = committed.Count };
    }

    /// <summary>
    /// Deletes <paramref name="path"/> unless a live writer holds it (its lock) or its envelope
    /// appeared. The check and the unlink happen while the sweep holds the file's exclusive lock:
    /// a writer that opened the file just before cannot then lock it (it retries with a new id),
    /// and one that locked it first makes the sweep pass it by. Probing, releasing and then
    /// deleting would let a writer lock the file in between and commit a body that is gone.
    /// </summary>
    private static bool TryRemoveUnheld(string path, string? envelopeToKeep)
    {
        FileStream probe;
        try
        {
            probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false; // held by its writer, or gone already
        }
        using (probe)
        {
            SweepHook?.Invoke(path);
            if (envelopeToKeep is not null && File.Exists(envelopeToKeep)) return false; // committed meanwhile
            if (OperatingSystem.IsWindows())
            {
                probe.Dispose(); // Windows cannot unlink a file it holds open without sharing
            }
            try { File.Delete(path); }
            catch (IOException) { return false; }
            return true;
        }
    }

    /// <summary>Test seam: runs while the sweep holds a leftover's lock, just before it decides.</summary>
    internal static Action<string>? SweepHook;

    public void Dispose()
    {
        if (_committer.IsValueCreated) _committer.Value.Dispose();
    }
}
