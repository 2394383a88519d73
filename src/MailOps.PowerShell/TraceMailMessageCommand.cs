using System.Management.Automation;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>Trace-MailMessage: the journey of a message from the mail log, which outlives it (JournalRetention).</summary>
[Cmdlet(VerbsDiagnostic.Trace, "MailMessage")]
[OutputType(typeof(MailTraceEvent))]
public sealed class TraceMailMessageCommand : QueuedMailCommand
{
    protected override void ProcessRecord()
    {
        using var store = OpenExistingQueue(QueuePath);
        if (store is null) return;
        foreach (var key in Id)
        {
            var events = MessageTrace.Read(store, key);
            if (events.Count == 0)
                WriteError(new ErrorRecord(new ItemNotFoundException($"Nothing is known of {key} in {store.QueuePath} (never queued there, or its history has expired from the mail log)."),
                    "TraceNotFound", ErrorCategory.ObjectNotFound, key));
            else WriteObject(events, enumerateCollection: true);
        }
    }
}
