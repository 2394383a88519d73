using System.Collections;
using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.PowerShell;

/// <summary>
/// Submit-MailMessage: enqueues messages (qmail-inject, Postfix's sendmail): MimeKit MimeMessage
/// objects from the pipeline, .eml files, or a message built from -From -To -Subject -Body.
/// Returns the QueuedMail; a running server is woken through the queue trigger.
/// </summary>
[Cmdlet(VerbsLifecycle.Submit, "MailMessage", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = "Compose")]
[OutputType(typeof(QueuedMail))]
public sealed class SubmitMailMessageCommand : ComposeMailCommand
{
    // Reference-type fields only (see GetMailQueueCommand.State).
    private MailOpsConfig? _config;
    private QueueStore? _store;
    /// <summary>A queue another user owns (the system queue): messages go through its maildrop.</summary>
    private string? _maildropQueue;

    /// <summary>A MimeKit MimeMessage (from any copy of MimeKit), or a path to an .eml file.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = "Message")]
    [ValidateNotNull]
    public object? Message { get; set; }

    /// <summary>Paths of .eml files (RFC 5322 messages); bound from FullName, so Get-ChildItem *.eml | Submit-MailMessage works.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = "Path")]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string[]? Path { get; set; }

    [Parameter]
    [ValidateNotNull]
    public string? Sender { get; set; }

    /// <summary>Envelope recipients in addition to the To:, Cc: and Bcc: of the message.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[] Recipient { get; set; } = [];

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ConfigPath { get; set; }

    /// <summary>Create the queue when there is none at the path (otherwise a mistyped path is QueueNotFound, not a new queue no server serves).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void BeginProcessing()
    {
        try
        {
            var (config, queuePath) = LoadConfig(ConfigPath, QueuePath);
            _config = config;
            if (MaildropClient.MustUseMaildrop(queuePath))
            {
                _maildropQueue = queuePath;
                return;
            }
            if (!Force && !QueueStore.Exists(queuePath)) ThrowTerminatingError(Errors.QueueNotFound(queuePath));
            _store = QueueStore.Open(queuePath, new QueueStoreOptions { JournalRetention = config.JournalRetention });
        }
        catch (ConfigException ex)
        {
            ThrowTerminatingError(Errors.InvalidConfiguration(ex));
        }
        catch (QueueFailureException ex)
        {
            ThrowTerminatingError(Errors.QueueFailure(ex, QueuePath));
        }
    }

    protected override void ProcessRecord()
    {
        switch (ParameterSetName)
        {
            case "Compose":
                Submit(DraftDescription, () => MessageComposer.Compose(Draft()));
                break;
            case "Path":
                foreach (var path in Path!) SubmitFile(path);
                break;
            default:
                object message = Message is PSObject ps ? ps.BaseObject : Message!;
                if (message is string file) SubmitFile(file);
                else if (message is FileInfo info) SubmitFile(info.FullName);
                else Submit($"{message.GetType().Name} {message}", () => MessageComposer.FromObject(message));
                break;
        }
    }

    protected override void EndProcessing() => _store?.Dispose();

    private void SubmitFile(string path)
    {
        string full = GetUnresolvedProviderPathFromPSPath(path);
        Submit(full, () => MessageComposer.FromFile(full));
    }

    private void Submit(string target, Func<MessageContent> content)
    {
        if (!ShouldProcess(target, _store is not null ? $"Submit to the queue at {_store.QueuePath}" : $"Hand to the maildrop of {_maildropQueue}")) return;
        var config = _config!;
        try
        {
            using var message = content();
            if (_maildropQueue is not null)
            {
                // No queue id yet: the server's pickup queues it in a moment (Get-MailQueue through the server, mailq).
                var args = new List<string> { "-i", "-t" };
                if ((Sender ?? message.HeaderSender) is { } sender) args.AddRange(["-f", sender]);
                args.Add("--");
                args.AddRange(Recipient);
                Bridge(MaildropClient.SubmitAsync(_maildropQueue, args, message.Content, Cancellation));
                WriteVerbose($"{target}: handed to the maildrop of {_maildropQueue}; its server queues it.");
                return;
            }
            var committed = Bridge(MessageSubmitter.SubmitEnvelopeAsync(_store!, message.Content, new SubmissionRequest
            {
                Sender = Sender ?? message.HeaderSender,
                Recipients = Recipient,
                RecipientsFromHeaders = true,
                Origin = MessageOrigin.Submit,
                HostName = config.HostName,
                DefaultDomain = config.EffectiveDefaultDomain,
                PlusDomain = config.PlusDomain,
                MaxMessageSize = config.MaxMessageSize,
            }, Cancellation));
            WriteObject(_store!.Committed(committed));
        }
        catch (Exception ex) when (ex is SubmissionException or HeaderInjectionException or ArgumentException or FileNotFoundException or DirectoryNotFoundException)
        {
            WriteSubmissionError(ex, target);
        }
    }

}
