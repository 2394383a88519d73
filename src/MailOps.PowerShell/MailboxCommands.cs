using System.Management.Automation;
using MailOps.Core.Hosting;
using MailOps.Core.Local;

namespace MailOps.PowerShell;

/// <summary>
/// What the mailbox cmdlets share: where the messages are (a server of this session, its queue's
/// capture store and its Maildirs) and which of them are meant (docs/testing.md).
/// </summary>
public abstract class MailboxCmdlet : MailOpsCmdlet
{
    /// <summary>The server whose messages are read; default: the last one started in this session that runs, else the queue of -QueuePath.</summary>
    [Parameter(ValueFromPipeline = true)]
    [ValidateNotNull]
    public MailServer? Server { get; set; }

    /// <summary>A queue whose captured messages (and whose configuration's Maildirs) are read, with no server of this session.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }

    /// <summary>An envelope recipient, or an address of To or Cc.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string? Address { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string? Subject { get; set; }

    /// <summary>The envelope sender or an address of From.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string? From { get; set; }

    /// <summary>Only messages that arrived at or after this time.</summary>
    [Parameter]
    public DateTime? Since { get; set; }

    private protected MailboxQuery Query => new() { Address = Address, Subject = Subject, From = From, Since = Since is { } s ? new DateTimeOffset(s) : null };

    /// <summary>The queue and the Maildir root to read.</summary>
    private protected (string Queue, string? MaildirRoot) Source()
    {
        if (Server is { } server) return (server.QueuePath, server.MaildirRoot);
        if (string.IsNullOrEmpty(QueuePath) && ServerRegistry.All.LastOrDefault(s => s.State == MailServerState.Running) is { } latest)
            return (latest.QueuePath, latest.MaildirRoot);
        var (config, queue) = LoadConfig(null, QueuePath);
        return (queue, config.MaildirRoot);
    }
}

/// <summary>
/// Get-MailboxMessage: the messages a capturing server kept, and those delivered into local
/// Maildirs, as objects a test can assert on; newest first.
/// </summary>
[Cmdlet(VerbsCommon.Get, "MailboxMessage")]
[OutputType(typeof(MailboxMessage), typeof(byte[]))]
public sealed class GetMailboxMessageCommand : MailboxCmdlet
{
    /// <summary>At most this many (the newest).</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int First { get; set; } = int.MaxValue;

    /// <summary>Each message's octets as kept (a byte array, the .eml file) instead of an object.</summary>
    [Parameter]
    public SwitchParameter Raw { get; set; }

    protected override void ProcessRecord()
    {
        var (queue, maildir) = Source();
        foreach (var message in Mailboxes.Read(queue, maildir, Query).Take(First))
        {
            if (Raw) WriteObject(message.GetRaw(), enumerateCollection: false);
            else WriteObject(message);
        }
    }
}

/// <summary>
/// Wait-MailboxMessage: returns the first matching message as soon as it is there (at once when
/// one is there already), waking on the capture store's and the Maildirs' changes; after -Timeout
/// seconds without one, a terminating MailWaitTimeout error.
/// </summary>
[Cmdlet(VerbsLifecycle.Wait, "MailboxMessage")]
[OutputType(typeof(MailboxMessage))]
public sealed class WaitMailboxMessageCommand : MailboxCmdlet
{
    /// <summary>Seconds to wait.</summary>
    [Parameter]
    [ValidateRange(0.0, 86400.0)]
    public double Timeout { get; set; } = 30;

    /// <summary>Wait until this many match; all of them are returned, newest first.</summary>
    [Parameter]
    [ValidateRange(1, 100000)]
    public int Count { get; set; } = 1;

    protected override void ProcessRecord()
    {
        var (queue, maildir) = Source();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(Timeout);
        using var changed = new SemaphoreSlim(0);
        void Wake() { if (changed.CurrentCount == 0) changed.Release(); }
        var watchers = new List<FileSystemWatcher>();
        try
        {
            foreach (var wanted in Mailboxes.WatchedDirectories(queue, maildir))
            {
                // A directory made by the first message (the capture store, a Maildir root) is
                // watched through the nearest one that exists, subdirectories included.
                string? dir = wanted;
                while (dir is not null && !Directory.Exists(dir)) dir = Path.GetDirectoryName(dir);
                if (dir is null) continue;
                var watcher = new FileSystemWatcher(dir) { IncludeSubdirectories = dir != CaptureStore.DirectoryOf(queue), NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName };
                watcher.Created += (_, _) => Wake();
                watcher.Renamed += (_, _) => Wake();
                watcher.EnableRaisingEvents = true;
                watchers.Add(watcher);
            }
            while (true)
            {
                var found = Mailboxes.Read(queue, maildir, Query);
                if (found.Count >= Count)
                {
                    foreach (var message in found.Take(Count)) WriteObject(message);
                    return;
                }
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) break;
                // A watcher wakes us at once; the second-long wait is only a safety net.
                try { changed.Wait(left < TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1), Cancellation); }
                catch (OperationCanceledException) { throw new PipelineStoppedException(); }
            }
        }
        finally
        {
            foreach (var w in watchers) w.Dispose();
        }
        ThrowTerminatingError(new ErrorRecord(
            new TimeoutException($"No message matching {Describe()} arrived within {Timeout} s (queue {queue}{(maildir is null ? "" : ", Maildirs under " + maildir)})."),
            "MailWaitTimeout", ErrorCategory.OperationTimeout, Query));
    }

    private string Describe()
    {
        var parts = new List<string>();
        if (Address is not null) parts.Add($"-Address '{Address}'");
        if (Subject is not null) parts.Add($"-Subject '{Subject}'");
        if (From is not null) parts.Add($"-From '{From}'");
        if (Since is not null) parts.Add($"-Since {Since:O}");
        if (Count > 1) parts.Add($"-Count {Count}");
        return parts.Count == 0 ? "anything" : string.Join(" ", parts);
    }
}

/// <summary>Remove-MailboxMessage: deletes messages that Get-MailboxMessage or Wait-MailboxMessage returned.</summary>
[Cmdlet(VerbsCommon.Remove, "MailboxMessage", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(MailboxMessage))]
public sealed class RemoveMailboxMessageCommand : MailOpsCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNull]
    public MailboxMessage[] InputObject { get; set; } = [];

    /// <summary>Write each removed message to the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var message in InputObject) MailboxRemoval.Remove(this, message, PassThru);
    }
}

/// <summary>Clear-Mailbox: removes every message Get-MailboxMessage would return with the same parameters (between tests).</summary>
[Cmdlet(VerbsCommon.Clear, "Mailbox", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(MailboxMessage))]
public sealed class ClearMailboxCommand : MailboxCmdlet
{
    /// <summary>Write each removed message to the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var (queue, maildir) = Source();
        foreach (var message in Mailboxes.Read(queue, maildir, Query)) MailboxRemoval.Remove(this, message, PassThru);
    }
}

internal static class MailboxRemoval
{
    /// <summary>Removes one message when ShouldProcess agrees; with <paramref name="passThru"/>, writes it out.</summary>
    public static void Remove(Cmdlet cmdlet, MailboxMessage message, bool passThru)
    {
        if (!cmdlet.ShouldProcess($"{message.Mailbox} {message.Id} ({message.Subject})", "Remove")) return;
        Mailboxes.Remove(message);
        if (passThru) cmdlet.WriteObject(message);
    }
}
