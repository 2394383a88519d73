using System.Collections.Concurrent;

namespace MailOps.Core.Queue;

/// <summary>
/// Makes many concurrent enqueues durable together (docs/queue.md, "The commit, in order").
/// One thread takes every request that arrived while it was busy and commits them as a batch:
/// make all their bodies and envelopes durable, rename each envelope into env/ (the commit),
/// fsync(env/). On Linux the first step is one syncfs(2) for the whole batch; elsewhere a pool of
/// threads fsyncs the files first, many at once. No request completes before the flush that
/// covers it has returned.
/// </summary>
internal sealed class GroupCommitter : IDisposable
{
    internal sealed class Request
    {
        public required FileStream Body { get; init; }
        public required FileStream Envelope { get; init; }
        public required string EnvelopeTmpPath { get; init; }
        public required string EnvelopePath { get; init; }
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        internal int PendingSyncs = 2;
        internal Exception? Error;
    }

    private const int SyncThreads = 24;
    private const int MaxBatch = 1024;

    private readonly DurableFile.DirectoryHandle _messDir;
    private readonly DurableFile.DirectoryHandle _envDir;
    private readonly BlockingCollection<(FileStream File, Request Owner)> _syncWork = new();
    private readonly Queue<Request> _ready = new();
    private readonly object _readyGate = new();
    private readonly List<Thread> _threads = new();
    private bool _started;
    private volatile bool _disposed;
    private volatile bool _syncDrained;

    private readonly bool _useSyncfs;

    private readonly SpareFiles? _spare;

    /// <summary>True where a batch is made durable with one syncfs(2) (Linux, unless MAILOPS_NO_SYNCFS=1).</summary>
    public static bool UsesSyncfs => OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("MAILOPS_NO_SYNCFS") != "1";

    /// <param name="spare">Spare files whose moves each syncfs makes durable (so they may be written again).</param>
    public GroupCommitter(string messDirectory, string envDirectory, SpareFiles? spare = null)
    {
        _messDir = new DurableFile.DirectoryHandle(messDirectory);
        _envDir = new DurableFile.DirectoryHandle(envDirectory);
        _useSyncfs = UsesSyncfs;
        _spare = spare;
    }

    /// <summary>Number of batches committed and messages in them (for tests and benchmarks).</summary>
    public long Batches;
    public long Committed;

    public Task CommitAsync(Request request)
    {
        var closed = QueueFailureException.Transient("The queue store is closed.");
        if (_disposed) return Task.FromException(closed);
        EnsureStarted();
        if (_useSyncfs)
        {
            lock (_readyGate)
            {
                // The commit loop ends once disposal drained it: a late request would wait for ever.
                if (_syncDrained) return Task.FromException(closed);
                _ready.Enqueue(request);
                Monitor.Pulse(_readyGate);
            }
        }
        else
        {
            try
            {
                _syncWork.Add((request.Body, request));
                _syncWork.Add((request.Envelope, request));
            }
            catch (InvalidOperationException)
            {
                // Added after disposal began: a closed queue, not a bug. The request fails now; a
                // body fsync already handed over finishes without anyone waiting for it.
                request.Error ??= closed;
                request.Done.TrySetException(closed);
            }
        }
        return request.Done.Task;
    }

    private void EnsureStarted()
    {
        if (Volatile.Read(ref _started)) return;
        lock (_threads)
        {
            if (_started) return;
            if (!_useSyncfs)
                for (int i = 0; i < SyncThreads; i++) Start(SyncLoop, $"mailops-fsync-{i}");
            Start(CommitLoop, "mailops-commit");
            Volatile.Write(ref _started, true);
        }
    }

    private void Start(Action loop, string name)
    {
        var thread = new Thread(() => loop()) { IsBackground = true, Name = name };
        _threads.Add(thread);
        thread.Start();
    }

    private void SyncLoop()
    {
        foreach (var (file, owner) in _syncWork.GetConsumingEnumerable())
        {
            try
            {
                file.Flush(flushToDisk: true);
            }
            catch (Exception ex)
            {
                owner.Error ??= ex;
            }
            if (Interlocked.Decrement(ref owner.PendingSyncs) == 0)
            {
                lock (_readyGate)
                {
                    _ready.Enqueue(owner);
                    Monitor.Pulse(_readyGate);
                }
            }
        }
    }

    private void CommitLoop()
    {
        var batch = new List<Request>();
        while (true)
        {
            lock (_readyGate)
            {
                while (_ready.Count == 0 && !_syncDrained) Monitor.Wait(_readyGate);
                if (_ready.Count == 0) return;
                while (_ready.Count > 0 && batch.Count < MaxBatch) batch.Add(_ready.Dequeue());
            }
            CommitBatch(batch);
            batch.Clear();
        }
    }

    private void CommitBatch(List<Request> batch)
    {
        var renamed = new List<Request>(batch.Count);
        try
        {
            // Bodies, envelopes and their directory entries must be durable before any envelope is
            // renamed into env/: with syncfs that is one call; otherwise the files were fsynced
            // already and the body directory entries remain.
            if (_useSyncfs) SyncFileSystem(_messDir, _spare);
            else _messDir.Sync();
        }
        catch (Exception ex)
        {
            foreach (var r in batch) r.Error ??= ex;
        }

        foreach (var r in batch)
        {
            if (r.Error is not null) continue;
            try
            {
                if (OperatingSystem.IsWindows()) r.Envelope.Dispose(); // Windows cannot rename an open file
                DurableFile.Rename(r.EnvelopeTmpPath, r.EnvelopePath); // the commit point
                renamed.Add(r);
            }
            catch (Exception ex)
            {
                r.Error = ex;
            }
        }

        if (renamed.Count > 0)
        {
            try
            {
                _envDir.Sync();
            }
            catch (Exception ex)
            {
                // Not durable, so not acknowledged: take the commits back and fail them.
                foreach (var r in renamed)
                {
                    r.Error = ex;
                    try { File.Delete(r.EnvelopePath); } catch { /* the sweep cannot tell it from a real one; at-least-once */ }
                }
            }
        }

        Interlocked.Increment(ref Batches);
        foreach (var r in batch)
        {
            if (r.Error is null)
            {
                Interlocked.Increment(ref Committed);
                r.Done.TrySetResult();
            }
            else
            {
                r.Done.TrySetException(QueueFailureException.Transient("Could not make the message durable: " + r.Error.Message, r.Error));
            }
        }
    }

    /// <summary>syncfs(2) through <paramref name="directory"/>; spare files moved before it began may then be written again.</summary>
    internal static void SyncFileSystem(DurableFile.DirectoryHandle directory, SpareFiles? spare)
    {
        var given = spare?.BeforeSync();
        try
        {
            directory.SyncFileSystem();
        }
        catch
        {
            spare?.NotSynced(given);
            throw;
        }
        spare?.Synced(given);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _syncWork.CompleteAdding();
        // Drain in order: fsync threads finish what was handed to them, then the committer commits it.
        foreach (var t in _threads.Where(t => t.Name != "mailops-commit")) t.Join(TimeSpan.FromSeconds(30));
        _syncDrained = true;
        lock (_readyGate) Monitor.PulseAll(_readyGate);
        foreach (var t in _threads.Where(t => t.Name == "mailops-commit")) t.Join(TimeSpan.FromSeconds(30));
        _messDir.Dispose();
        _envDir.Dispose();
    }
}
