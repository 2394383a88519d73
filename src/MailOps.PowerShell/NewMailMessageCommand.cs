using System.Management.Automation;
using MailOps.Core.Submission;

namespace MailOps.PowerShell;

/// <summary>
/// New-MailMessage: builds a message (a MimeKit MimeMessage of the module's own MimeKit) from
/// parameters, without queueing it, for a script to look at, change, or pipe to Submit-MailMessage.
/// The supported way to get a MimeMessage: the module keeps MimeKit in its own load context, so
/// [MimeKit.MimeMessage] is not a type name the session knows.
/// </summary>
[Cmdlet(VerbsCommon.New, "MailMessage", DefaultParameterSetName = "Compose")]
[OutputType("MimeKit.MimeMessage")]
public sealed class NewMailMessageCommand : ComposeMailCommand
{
    protected override void ProcessRecord()
    {
        try
        {
            WriteObject(MessageComposer.BuildMessage(Draft()));
        }
        catch (Exception ex) when (ex is SubmissionException or HeaderInjectionException or ArgumentException or FileNotFoundException or DirectoryNotFoundException)
        {
            WriteSubmissionError(ex, DraftDescription);
        }
    }
}
