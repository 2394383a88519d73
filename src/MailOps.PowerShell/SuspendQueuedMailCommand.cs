using System.Management.Automation;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>Suspend-QueuedMail: puts messages on hold (qmail has none; Postfix's postsuper -h). Held mail is never delivered and never expires.</summary>
[Cmdlet(VerbsLifecycle.Suspend, "QueuedMail", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(QueuedMail))]
public sealed class SuspendQueuedMailCommand : QueuedMailCommand
{
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord() => ForEachMessage(QueuePath, Id, (store, id) =>
    {
        if (!ShouldProcess($"{id} in {store.QueuePath}", "Hold")) return;
        var held = Bridge(store.HoldAsync(id, Cancellation));
        if (PassThru) WriteObject(held);
    });
}

/// <summary>Resume-QueuedMail: releases held messages; they are due at once.</summary>
[Cmdlet(VerbsLifecycle.Resume, "QueuedMail", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(QueuedMail))]
public sealed class ResumeQueuedMailCommand : QueuedMailCommand
{
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord() => ForEachMessage(QueuePath, Id, (store, id) =>
    {
        if (!ShouldProcess($"{id} in {store.QueuePath}", "Release")) return;
        var released = Bridge(store.ReleaseAsync(id, Cancellation));
        if (PassThru) WriteObject(released);
    });
}
