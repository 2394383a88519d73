namespace MailOps.Core.Queue;

/// <summary>Paths inside a spool directory (docs/queue.md, "Layout"). Ids are validated before use.</summary>
internal sealed class QueueLayout
{
    public QueueLayout(string root)
    {
        Root = Path.GetFullPath(root);
        MessDir = Path.Combine(Root, "mess");
        TmpDir = Path.Combine(Root, "tmp");
        EnvDir = Path.Combine(Root, "env");
        ActiveDir = Path.Combine(Root, "active");
        ReleasedDir = Path.Combine(Root, "released");
        JournalDir = Path.Combine(Root, "journal");
        LockDir = Path.Combine(Root, "lock");
        ControlDir = Path.Combine(Root, "control");
        LogDir = Path.Combine(Root, "log");
        IndexDir = Path.Combine(Root, "index");
        SpareDir = Path.Combine(Root, "spare");
    }

    public string Root { get; }
    public string MessDir { get; }
    public string TmpDir { get; }
    public string EnvDir { get; }
    public string ActiveDir { get; }
    /// <summary>Release markers: a held message released, not yet written back (docs/queue.md, "Changing a message").</summary>
    public string ReleasedDir { get; }
    /// <summary>Per-message journals of queues from before the mail log was a message's history: read and expired, never written.</summary>
    public string JournalDir { get; }
    public string LockDir { get; }
    public string ControlDir { get; }
    /// <summary>The mail log: one JSON-lines file per UTC day (docs/logging.md).</summary>
    public string LogDir { get; }
    /// <summary>The summary index, a cache of the envelopes (docs/queue.md, "The summary index").</summary>
    public string IndexDir { get; }

    /// <summary>Spare files: the files of messages that left the queue, to be written again (docs/queue.md, "Spare files").</summary>
    public string SpareDir { get; }

    public IEnumerable<string> AllDirectories => [MessDir, TmpDir, EnvDir, ActiveDir, ReleasedDir, LockDir, ControlDir, LogDir, IndexDir, SpareDir];

    public string Mess(string id) => Path.Combine(MessDir, Checked(id));
    public string Tmp(string id) => Path.Combine(TmpDir, Checked(id));
    public string Env(string id) => Path.Combine(EnvDir, Checked(id));
    public string Active(string id) => Path.Combine(ActiveDir, Checked(id));
    public string Released(string id) => Path.Combine(ReleasedDir, Checked(id));
    public string Journal(string id) => Path.Combine(JournalDir, Checked(id));
    public string ServerLock => Path.Combine(LockDir, "server");
    public string MutateLock => Path.Combine(LockDir, "mutate");

    private static string Checked(string id) =>
        QueueId.IsValid(id) ? id : throw new ArgumentException($"'{id}' is not a queue id.", nameof(id));
}
