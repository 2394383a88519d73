using System.Collections;
using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Submission;

namespace MailOps.PowerShell;

/// <summary>
/// The parameters that compose a message (-From -To -Cc -Bcc -Subject -Body -BodyAsHtml
/// -Attachment -Header), shared by Submit-MailMessage and New-MailMessage, and the ErrorRecords
/// of a message that cannot be made.
/// </summary>
public abstract class ComposeMailCommand : MailOpsCmdlet
{
    [Parameter(Mandatory = true, ParameterSetName = "Compose")]
    [ValidateNotNullOrEmpty]
    public string From { get; set; } = "";

    [Parameter(ParameterSetName = "Compose")]
    [ValidateNotNullOrEmpty]
    public string[] To { get; set; } = [];

    [Parameter(ParameterSetName = "Compose")]
    [ValidateNotNullOrEmpty]
    public string[] Cc { get; set; } = [];

    [Parameter(ParameterSetName = "Compose")]
    [ValidateNotNullOrEmpty]
    public string[] Bcc { get; set; } = [];

    [Parameter(ParameterSetName = "Compose")]
    public string? Subject { get; set; }

    [Parameter(ParameterSetName = "Compose")]
    public string? Body { get; set; }

    [Parameter(ParameterSetName = "Compose")]
    public SwitchParameter BodyAsHtml { get; set; }

    [Parameter(ParameterSetName = "Compose")]
    [ValidateNotNullOrEmpty]
    public string[] Attachment { get; set; } = [];

    /// <summary>Extra header fields (name = value); a value with CR or LF is refused.</summary>
    [Parameter(ParameterSetName = "Compose")]
    [ValidateNotNull]
    public IDictionary? Header { get; set; }

    /// <summary>Envelope sender; default: the message's Sender: or From: address.</summary>
    /// <summary>What the composed message is, for -WhatIf and errors.</summary>
    private protected string DraftDescription => $"message from {From} to {string.Join(", ", To.Concat(Cc).Concat(Bcc))}";

    /// <summary>The parameters as a draft; attachment paths resolved as PowerShell paths.</summary>
    private protected MessageDraft Draft() => new()
    {
        From = From,
        To = To,
        Cc = Cc,
        Bcc = Bcc,
        Subject = Subject,
        Body = Body,
        BodyAsHtml = BodyAsHtml,
        Attachments = Attachment.Select(GetUnresolvedProviderPathFromPSPath).ToList(),
        Headers = Header is null ? [] : Header.Keys.Cast<object>().Select(k => new KeyValuePair<string, string>(k.ToString() ?? "", Header[k]?.ToString() ?? "")).ToList(),
    };

    private protected void WriteSubmissionError(Exception ex, object? target)
    {
        WriteError(ex switch
        {
            HeaderInjectionException h => new ErrorRecord(h, "HeaderInjection", ErrorCategory.InvalidArgument, target),
            SubmissionException { Kind: SubmissionErrorKind.Temporary } s => new ErrorRecord(s, "QueueUnavailable", ErrorCategory.ResourceUnavailable, target),
            SubmissionException { Kind: SubmissionErrorKind.BadMessage } s => new ErrorRecord(s, "BadMessage", ErrorCategory.InvalidData, target),
            SubmissionException s => new ErrorRecord(s, "BadSubmission", ErrorCategory.InvalidArgument, target),
            FileNotFoundException or DirectoryNotFoundException => new ErrorRecord(ex, "FileNotFound", ErrorCategory.ObjectNotFound, target),
            ConfigException c => Errors.InvalidConfiguration(c),
            _ => new ErrorRecord(ex, "NotAMessage", ErrorCategory.InvalidType, target),
        });
    }
}
