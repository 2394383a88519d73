using System.Management.Automation;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>Trace-MailMessage: the journey of a message from the mail log, which outlives it (JournalRetention).</summary>
[Cmdlet(VerbsDiagnostic.Trace, "MailMessage")]
[OutputType(typeof(MailTraceEvent))]
public sealed class TraceMailMessageCommand : QueuedMailCommand
{
    // A pipeline of many messages (Get-MailQueue | Trace-MailMessage) is traced at its end, with
    // one reading of each queue's mail log, instead of one reading per message.
    private readonly List<(string? QueuePath, string Key)> _keys = new();

    protected override void ProcessRecord()
    {
        foreach (var key in Id) _keys.Add((QueuePath, key));
    }

    protected override void EndProcessing()
    {
        foreach (var queue in _keys.GroupBy(k => k.QueuePath))
        {
            using var store = OpenExistingQueue(queue.Key);
            if (store is null) continue;
            foreach (var (key, events) in MessageTrace.Read(store, queue.Select(k => k.Key).ToList()))
            {
                if (events.Count == 0)
                    WriteError(new ErrorRecord(new ItemNotFoundException($"Nothing is known of {key} in {store.QueuePath} (never queued there, or its history has expired from the mail log)."),
                        "TraceNotFound", ErrorCategory.ObjectNotFound, key));
                else WriteObject(events, enumerateCollection: true);
            }
        }
    }
}
