using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>
/// Remove-QueuedMail: takes messages out of the queue for good. With -Bounce the sender gets a
/// delivery status notification for the recipients that were still waiting.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "QueuedMail", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(QueuedMail))]
public sealed class RemoveQueuedMailCommand : QueuedMailCommand
{
    /// <summary>Send the sender a non-delivery report (status 5.0.0 and the reason).</summary>
    [Parameter]
    public SwitchParameter Bounce { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string Reason { get; set; } = "removed from the queue by an operator";

    /// <summary>The configuration whose HostName signs the report (default: the queue's control/config.json).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ConfigPath { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        MailOpsConfig? config = null;
        if (Bounce)
        {
            try
            {
                config = LoadConfig(ConfigPath, QueuePath).Config;
            }
            catch (ConfigException ex)
            {
                WriteError(Errors.InvalidConfiguration(ex));
                return;
            }
        }
        ForEachMessage(QueuePath, Id, (store, id) =>
        {
            if (!ShouldProcess($"{id} in {store.QueuePath}", Bounce ? "Remove and bounce to the sender" : "Remove")) return;
            var removed = config is null
                ? Bridge(store.RemoveAsync(id, Reason, Cancellation))
                : Bridge(OperatorBounce.BounceAndRemoveAsync(store, config.HostName, id, Reason, Cancellation));
            if (PassThru) WriteObject(removed);
        });
    }
}
