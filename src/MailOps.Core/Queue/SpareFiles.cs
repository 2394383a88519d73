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
/// unlinked as before (the store makes none). At most about <see cref="MaxFiles"/> files are kept.
/// </summary>
internal sealed class SpareFiles
{
    /// <summary>How many spare files a process keeps at most; more are unlinked.</summary>
    public const int MaxFiles = 8192;

    /// <summary>The largest body given (bodies above it are read as streams, and their blocks are better freed).</summary>
    public const long MaxBody = 32 * 1024;

    private static readonly TimeSpan RescanAfter = TimeSpan.FromSeconds(5);

    private readonly string _dir;
    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    /// <summary>Moved into spare/ (or found there), not yet known durable.</summary>
    private List<string> _given = new();
    /// <summary>Durable in spare/: free to be written again.</summary>
    private readonly Stack<string> _ready = new();
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);
    private DateTimeOffset _lastScan = DateTimeOffset.MinValue;
    private volatile bool _unsupported;

    public SpareFiles(string directory, TimeProvider clock)
    {
        _dir = directory;
        _clock = clock;
    }

    /// <summary>Files this process knows in spare/ (given, found, durable or not).</summary>
    public int Count
    {
        get { lock (_gate) return _known.Count; }
    }

    /// <summary>
    /// Moves <paramref name="path"/> into spare/ as <paramref name="name"/> (unique: a queue id and a
    /// suffix), or unlinks it when there are enough spare files already. A file already gone is no error.
    /// </summary>
    /// <exception cref="IOException">The unlink failed.</exception>
    public void Give(string path, string name)
    {
        bool keep;
        lock (_gate) keep = !_unsupported && _known.Count < MaxFiles;
        if (keep)
        {
            int errno = DurableFile.RenameNoReplace(path, Path.Combine(_dir, name));
            if (errno == 0)
            {
                lock (_gate)
                {
                    if (_known.Add(name)) _given.Add(name);
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
            lock (_gate)
            {
                if (_unsupported) return false;
                if (_ready.Count == 0) Rescan();
                if (_ready.Count == 0) return false;
                name = _ready.Pop();
                _known.Remove(name);
            }
            int errno = DurableFile.RenameNoReplace(Path.Combine(_dir, name), destination);
            if (errno == 0) return true;
            if (errno == 2) continue; // another process took it
            if (errno is 22 or 38) _unsupported = true;
            else if (errno == 17) lock (_gate) { if (_known.Add(name)) _ready.Push(name); } // the destination exists: the caller picks another
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
            foreach (var path in Directory.EnumerateFiles(_dir))
            {
                if (_known.Count >= MaxFiles) break;
                string name = Path.GetFileName(path);
                if (_known.Add(name)) _given.Add(name);
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
                if (_known.Contains(name)) _ready.Push(name);
    }

    /// <summary>The syncfs failed: the files wait for the next one.</summary>
    public void NotSynced(List<string>? given)
    {
        if (given is null) return;
        lock (_gate) _given.AddRange(given);
    }
}
