namespace MailOps.Core.Queue;

/// <summary>
/// Serialises read-modify-write of one envelope across threads and processes: an in-process
/// semaphore per stripe of ids, then a byte-range lock on <c>lock/mutate</c> (one byte per
/// stripe; fcntl on Unix, LockFileEx on Windows). The byte-range lock is released by the
/// kernel if the process dies, so a crash never leaves a message locked.
/// </summary>
internal sealed class MutationLocks : IDisposable
{
    private const int Stripes = 64;
    private readonly SemaphoreSlim[] _local = Enumerable.Range(0, Stripes).Select(_ => new SemaphoreSlim(1, 1)).ToArray();
    private readonly FileStream _file;

    public MutationLocks(string lockFile)
    {
        _file = new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
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

    public void Dispose() => _file.Dispose();

    private sealed class Holder(MutationLocks owner, int stripe) : IDisposable
    {
        private int _released;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) owner.Release(stripe);
        }
    }
}
