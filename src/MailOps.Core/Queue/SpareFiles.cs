namespace MailOps.Core.Queue;

/// <summary>
/// Spare files (docs/queue.md, "Spare files"): the files of a message that left the queue are
/// moved into spare/ instead of being unlinked, and the next message's body and envelope are
/// written into them instead of into new files. On ext4 a new inode costs about 1 ms of CPU for
/// minutes after many files were deleted, and an unlink frees the file's blocks (with a discard
/// when the file system is mounted so); a rename costs neither.
/// <para>
/// The rules that keep one message's bytes out of another's:
/// </para>
/// <list type="bullet">
/// <item>A file is given only once its message's envelope is gone from env/ (so nothing can find
/// it by name), only when no delivery of it may still be reading (the caller says so), and only
/// a body small enough to be read whole (<see cref="MaxBody"/>): readers never hold it open for long.</item>
/// <item>A spare file is written again only after a syncfs(2) that began after it was moved into
/// spare/ has returned: a crash can then never bring back the old name with the new content.</item>
/// <item>Whoever takes a file renames it out of spare/ first (one process wins), writes it
/// whole and sets its length before the commit makes it visible.</item>
/// </list>
/// Linux only, and only where the queue commits with syncfs; elsewhere files are created and
/// unlinked as before (the store makes none). A process keeps at most <see cref="MaxFiles"/> files
/// and <see cref="MaxBytes"/> of them; more are unlinked.
/// </summary>
internal sealed class SpareFiles
{
    /// <summary>How many spare files a process keeps at most (a bound on its memory; the disk limit is <see cref="MaxBytes"/>).</summary>
    public const int MaxFiles = 65536;

    /// <summary>How much disk the spare files a process keeps may take at most (each counted in whole 4 KiB blocks).</summary>
    public const long MaxBytes = 256L * 1024 * 1024;

    /// <summary>The largest body given (bodies above it are read as streams, and their blocks are better freed).</summary>
    public const long MaxBody = 32 * 1024;

    /// <summary>What an envelope's file is counted as (its length is not known when it is given; nearly all are one block).</summary>
    public const long EnvelopeLength = 4096;

    private static readonly TimeSpan RescanAfter = TimeSpan.FromSeconds(5);

    private readonly string _dir;
    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    /// <summary>Moved into spare/ (or found there), not yet known durable.</summary>
    private List<string> _given = new();
    /// <summary>Durable in spare/: free to be written again.</summary>
    private readonly Stack<string> _ready = new();
    /// <summary>Every spare file this process knows of, with the disk it takes.</summary>
    private readonly Dictionary<string, long> _known = new(StringComparer.Ordinal);
    private long _bytes;
    private DateTimeOffset _lastScan = DateTimeOffset.MinValue;
    private volatile bool _unsupported;

    private readonly int _maxFiles;
    private readonly long _maxBytes;

    public SpareFiles(string directory, TimeProvider clock, int maxFiles = MaxFiles, long maxBytes = MaxBytes)
    {
        _dir = directory;
        _clock = clock;
        _maxFiles = maxFiles;
        _maxBytes = maxBytes;
    }

    /// <summary>The disk a file of <paramref name="length"/> octets takes, in whole 4 KiB blocks (at least one).</summary>
    private static long OnDisk(long length) => Math.Max(1, (length + 4095) / 4096) * 4096;

    private bool Add(string name, long length)
    {
        long bytes = OnDisk(length);
        if (!_known.TryAdd(name, bytes)) return false;
        _bytes += bytes;
        return true;
    }

    private void Forget(string name)
    {
        if (_known.Remove(name, out long bytes)) _bytes -= bytes;
    }

    private bool Full(long length) => _known.Count >= _maxFiles || _bytes + OnDisk(length) > _maxBytes;

    /// <summary>
    /// Moves <paramref name="path"/>, a file of about <paramref name="length"/> octets, into spare/ as
    /// <paramref name="name"/> (unique: a queue id and a suffix), or unlinks it when the spare files
    /// are at their limit already. A file already gone is no error.
    /// </summary>
    /// <exception cref="IOException">The unlink failed.</exception>
    public void Give(string path, string name, long length)
    {
        bool keep;
        lock (_gate) keep = !_unsupported && !Full(length);
        if (keep)
        {
            int errno = DurableFile.RenameNoReplace(path, Path.Combine(_dir, name));
            if (errno == 0)
            {
                lock (_gate)
                {
                    if (Add(name, length)) _given.Add(name);
                }
                return;
            }
            if (errno == 2) return; // gone already
            if (errno is 22 /* EINVAL */ or 38 /* ENOSYS */) _unsupported = true;
        }
        File.Delete(path);
    }

    /// <summary>
    /// Moves a durable spare file to <paramref name="destination"/>, which must not exist; the caller
    /// then owns it and must write it whole and set its length. False when there is none to take
    /// (create a new file then).
    /// </summary>
    public bool TryTake(string destination)
    {
        while (true)
        {
            string name;
            long length;
            lock (_gate)
            {
                if (_unsupported) return false;
                if (_ready.Count == 0) Rescan();
                if (_ready.Count == 0) return false;
                name = _ready.Pop();
                if (!_known.TryGetValue(name, out length)) continue;
                Forget(name);
            }
            int errno = DurableFile.RenameNoReplace(Path.Combine(_dir, name), destination);
            if (errno == 0) return true;
            if (errno == 2) continue; // another process took it
            if (errno is 22 or 38) _unsupported = true;
            else if (errno == 17) lock (_gate) { if (Add(name, length)) _ready.Push(name); } // the destination exists: the caller picks another
            return false;
        }
    }

    /// <summary>
    /// Files given by other processes (a <c>mailops remove</c>, an earlier server) are found by
    /// reading spare/, at most every few seconds and only when this process has none ready. They
    /// wait for the next syncfs like the ones given here: their renames may not be durable yet.
    /// </summary>
    private void Rescan()
    {
        var now = _clock.GetUtcNow();
        if (now - _lastScan < RescanAfter && now >= _lastScan) return;
        _lastScan = now;
        try
        {
            var files = new System.IO.Enumeration.FileSystemEnumerable<(string Name, long Length)>(_dir,
                (ref System.IO.Enumeration.FileSystemEntry entry) => (entry.FileName.ToString(), entry.Length),
                new EnumerationOptions { IgnoreInaccessible = true, AttributesToSkip = 0 })
            {
                ShouldIncludePredicate = (ref System.IO.Enumeration.FileSystemEntry entry) => !entry.IsDirectory,
            };
            foreach (var (name, length) in files)
            {
                if (_known.ContainsKey(name)) continue;
                if (Full(length)) break;
                if (Add(name, length)) _given.Add(name);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // No spare files to be had now; new files are made instead.
        }
    }

    /// <summary>Call just before a syncfs(2) of the queue's file system: what it returns is passed to <see cref="Synced"/>.</summary>
    public List<string>? BeforeSync()
    {
        lock (_gate)
        {
            if (_given.Count == 0) return null;
            var given = _given;
            _given = new List<string>();
            return given;
        }
    }

    /// <summary>The syncfs that followed <see cref="BeforeSync"/> returned: those files' moves into spare/ are durable.</summary>
    public void Synced(List<string>? given)
    {
        if (given is null) return;
        lock (_gate)
            foreach (var name in given)
                if (_known.ContainsKey(name)) _ready.Push(name);
    }

    /// <summary>The syncfs failed: the files wait for the next one.</summary>
    public void NotSynced(List<string>? given)
    {
        if (given is null) return;
        lock (_gate) _given.AddRange(given);
    }
}
