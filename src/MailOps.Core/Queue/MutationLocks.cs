namespace MailOps.Core.Queue;

/// <summary>
/// Serialises read-modify-write of one envelope across threads and processes: an in-process
/// semaphore per stripe of ids, then a byte-range lock on <c>lock/mutate</c> (one byte per
/// stripe; fcntl on Unix, LockFileEx on Windows). The byte-range lock is released by the
/// kernel if the process dies, so a crash never leaves a message locked.
/// POSIX byte-range locks belong to the process, not to a handle, so every store of one queue in
/// one process shares one instance (<see cref="For"/>): the semaphores are what exclude them.
/// </summary>
internal sealed class MutationLocks
{
    private const int Stripes = 64;
    private static readonly Dictionary<string, MutationLocks> ByPath = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim[] _local = Enumerable.Range(0, Stripes).Select(_ => new SemaphoreSlim(1, 1)).ToArray();
    private readonly FileStream _file;

    private MutationLocks(string lockFile)
    {
        _file = new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
    }

    /// <summary>The process-wide locks of the queue whose lock file is <paramref name="lockFile"/>. Kept open for the process's life.</summary>
    public static MutationLocks For(string lockFile)
    {
        string key = Path.GetFullPath(lockFile);
        if (OperatingSystem.IsWindows()) key = key.ToUpperInvariant();
        lock (ByPath)
        {
            // A queue deleted and made anew has a new lock file: the old handle would lock nothing.
            if (!ByPath.TryGetValue(key, out var locks) || !File.Exists(key)) ByPath[key] = locks = new MutationLocks(key);
            return locks;
        }
    }

    // FileStream.Lock is unsupported on macOS; MailOps serves Linux and Windows.
#pragma warning disable CA1416
    public async Task<IDisposable> AcquireAsync(string id, CancellationToken cancellationToken)
    {
        int stripe = StripeOf(id);
        await _local[stripe].WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int delay = 1;
            while (true)
            {
                try
                {
                    _file.Lock(stripe, 1);
                    return new Holder(this, stripe);
                }
                catch (IOException)
                {
                    // Held by another process: these sections are a few milliseconds long.
                    await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                    delay = Math.Min(delay * 2, 20);
                }
            }
        }
        catch
        {
            _local[stripe].Release();
            throw;
        }
    }

    /// <summary>
    /// The locks of all of <paramref name="ids"/> at once (for a batch of operator changes): each
    /// stripe once, taken in ascending order, so that two batches never wait on each other in a circle.
    /// </summary>
    public async Task<IDisposable> AcquireManyAsync(IEnumerable<string> ids, CancellationToken cancellationToken)
    {
        var held = new List<IDisposable>();
        try
        {
            foreach (var id in ids.GroupBy(StripeOf).OrderBy(g => g.Key).Select(g => g.First()))
                held.Add(await AcquireAsync(id, cancellationToken).ConfigureAwait(false));
            return new All(held);
        }
        catch
        {
            new All(held).Dispose();
            throw;
        }
    }

    private sealed class All(List<IDisposable> held) : IDisposable
    {
        public void Dispose()
        {
            for (int i = held.Count - 1; i >= 0; i--) held[i].Dispose();
            held.Clear();
        }
    }

    private static int StripeOf(string id)
    {
        uint h = 2166136261;
        foreach (char c in id) h = (h ^ c) * 16777619;
        return (int)(h % Stripes);
    }

    private void Release(int stripe)
    {
        try { _file.Unlock(stripe, 1); }
        finally { _local[stripe].Release(); }
    }

#pragma warning restore CA1416

    private sealed class Holder(MutationLocks owner, int stripe) : IDisposable
    {
        private int _released;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) owner.Release(stripe);
        }
    }
}
