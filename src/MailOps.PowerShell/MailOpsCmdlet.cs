using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Hosting;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.PowerShell;

/// <summary>
/// What every MailOps cmdlet shares: Ctrl+C cancels (<see cref="StopProcessing"/>), the one
/// bridge from the engines' async API to the pipeline thread, queue resolution (docs/configuration.md) and
/// ErrorRecords with stable ErrorIds.
/// </summary>
public abstract class MailOpsCmdlet : PSCmdlet
{
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline is stopped.</summary>
    protected CancellationToken Cancellation => _stopping.Token;

    protected override void StopProcessing() => _stopping.Cancel();

    /// <summary>
    /// The sync bridge: waits for <paramref name="work"/> on the pipeline thread, copying new
    /// lines of <paramref name="log"/> to the verbose and warning streams and showing progress,
    /// since nothing may write to the pipeline from the engine's threads.
    /// </summary>
    /// <exception cref="PipelineStoppedException">Ctrl+C.</exception>
    protected T Bridge<T>(Task<T> work, MemoryLog? log = null, Func<ProgressRecord?>? progress = null)
    {
        long cursor = 0;
        int presses = 0;
        bool announced = false;
        // PowerShell turns the first Ctrl+C into StopProcessing; the engine then winds down (a
        // delivery in flight is finished). A second Ctrl+C stops waiting for that.
        ConsoleCancelEventHandler onCtrlC = (_, _) => Interlocked.Increment(ref presses);
        try { Console.CancelKeyPress += onCtrlC; } catch (Exception ex) when (ex is IOException or PlatformNotSupportedException) { }
        try
        {
            while (true)
            {
                bool done = ((IAsyncResult)work).AsyncWaitHandle.WaitOne(100);
                if (Cancellation.IsCancellationRequested && !done)
                {
                    // The pipeline is stopping: nothing may be written to it, but the user is told
                    // through the host what is being waited for.
                    if (!announced)
                    {
                        announced = true;
                        Tell($"{MyInvocation.MyCommand.Name}: stopping. {StoppingDetail} Press Ctrl+C again to stop waiting: nothing is lost, unfinished work is picked up again later.");
                    }
                    if (Volatile.Read(ref presses) >= 2)
                    {
                        Tell($"{MyInvocation.MyCommand.Name}: stopped waiting; what was in flight finishes in the background.");
                        throw new PipelineStoppedException();
                    }
                    continue;
                }
                if (log is not null) Drain(log, ref cursor);
                if (progress?.Invoke() is { } record) WriteProgress(record);
                if (done) break;
            }
        }
        finally
        {
            try { Console.CancelKeyPress -= onCtrlC; } catch (Exception ex) when (ex is IOException or PlatformNotSupportedException) { }
        }
        try
        {
            return work.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (Cancellation.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <summary>What this command waits for once Ctrl+C was pressed (said to the user through the host).</summary>
    private protected virtual string StoppingDetail => "Waiting for the work in flight to finish.";

    /// <summary>A line to the user through the host, which works also while the pipeline stops.</summary>
    private protected void Tell(string text)
    {
        try { Host.UI.WriteWarningLine(text); }
        catch (Exception ex) when (ex is PipelineStoppedException or System.Management.Automation.Host.HostException or NotImplementedException or InvalidOperationException) { }
    }

    protected void Bridge(Task work, MemoryLog? log = null) => Bridge(work.ContinueWith(t => { t.GetAwaiter().GetResult(); return true; }, TaskScheduler.Default), log);

    /// <summary>Copies log lines after <paramref name="cursor"/>: warnings and errors as warnings, the rest as verbose.</summary>
    protected void Drain(MemoryLog log, ref long cursor)
    {
        foreach (var line in log.ReadNew(ref cursor))
        {
            string text = $"{line.Time:HH:mm:ss.fff} {line.Message}";
            if (line.Level is "Warning" or "Error") WriteWarning(text);
            else WriteVerbose(text);
        }
    }

    /// <summary>The queue path as docs/configuration.md resolves it: the parameter (a PowerShell path), else $env:MAILOPS_QUEUE, else the default.</summary>
    protected string ResolveQueuePath(string? queuePath) =>
        QueueLocation.Resolve(string.IsNullOrEmpty(queuePath) ? null : GetUnresolvedProviderPathFromPSPath(queuePath));

    /// <summary>The configuration (a -ConfigPath file, else the queue's control/config.json) and the queue path.</summary>
    protected (MailOpsConfig Config, string QueuePath) LoadConfig(string? configPath, string? queuePath) =>
        QueueLocation.Load(string.IsNullOrEmpty(configPath) ? null : GetUnresolvedProviderPathFromPSPath(configPath),
            string.IsNullOrEmpty(queuePath) ? null : GetUnresolvedProviderPathFromPSPath(queuePath));

    /// <summary>The resolved queue path when this user owns the queue (or it does not exist yet); otherwise a QueueNotOwned error and null.</summary>
    protected string? OwnedQueuePath(string? queuePath)
    {
        string path = ResolveQueuePath(queuePath);
        if (!MaildropClient.MustUseMaildrop(path)) return path;
        WriteError(Errors.QueueNotOwned(path));
        return null;
    }

    /// <summary>
    /// Opens an existing queue. Reading and acting on a queue never creates one: a typo in
    /// -QueuePath is reported (QueueNotFound) instead of answering from an empty new queue.
    /// </summary>
    protected QueueStore? OpenExistingQueue(string? queuePath)
    {
        string path = ResolveQueuePath(queuePath);
        if (MaildropClient.MustUseMaildrop(path)) WriteError(Errors.QueueNotOwned(path));
        else if (QueueStore.Exists(path)) return QueueStore.Open(path);
        else WriteError(Errors.QueueNotFound(path));
        return null;
    }

    /// <summary>Runs <paramref name="action"/> on each id of an existing queue; a missing message is a MessageNotFound error, and the rest go on.</summary>
    protected void ForEachMessage(string? queuePath, IEnumerable<string> ids, Action<QueueStore, string> action)
    {
        using var store = OpenExistingQueue(queuePath);
        if (store is null) return;
        foreach (var id in ids)
        {
            try
            {
                action(store, id);
            }
            catch (QueuedMessageNotFoundException ex)
            {
                WriteError(Errors.MessageNotFound(ex, id));
            }
            catch (QueueFailureException ex)
            {
                WriteError(Errors.QueueFailure(ex, id));
            }
        }
    }
}

/// <summary>The cmdlets that act on queued messages by id: -Id and -QueuePath, bound from QueuedMail objects.</summary>
public abstract class QueuedMailCommand : MailOpsCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueueIdCompleter))]
    public string[] Id { get; set; } = [];

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }
}

/// <summary>The ErrorRecords the module writes. ErrorIds are part of the interface: scripts match on them.</summary>
internal static class Errors
{
    public static ErrorRecord QueueNotFound(string path) =>
        new(new DirectoryNotFoundException($"There is no queue at {path}. A server creates its queue when it starts (Start-MailServer, mailops serve); Submit-MailMessage -Force creates one."), "QueueNotFound", ErrorCategory.ObjectNotFound, path);

    public static ErrorRecord QueueNotOwned(string path) =>
        new(new UnauthorizedAccessException($"The queue at {path} belongs to another account (a system queue): only that account acts on it (root too goes through it: 'mailops queue' and 'mailops hold' as root switch to it). Submit-MailMessage hands mail to it through its maildrop; mailq lists it through its server."),
            "QueueNotOwned", ErrorCategory.PermissionDenied, path);

    public static ErrorRecord ServerNotFound(int id) =>
        new(new ItemNotFoundException($"No mail server {id} was started in this session."), "ServerNotFound", ErrorCategory.ObjectNotFound, id);

    public static ErrorRecord MessageNotFound(Exception ex, string id) =>
        new(ex, "MessageNotFound", ErrorCategory.ObjectNotFound, id);

    public static ErrorRecord QueueFailure(QueueFailureException ex, object? target) =>
        new(ex, "QueueFailure", ex.IsTransient ? ErrorCategory.ResourceUnavailable : ErrorCategory.WriteError, target);

    public static ErrorRecord InvalidConfiguration(ConfigException ex) =>
        new(ex, "InvalidConfiguration", ErrorCategory.InvalidArgument, null);
}
