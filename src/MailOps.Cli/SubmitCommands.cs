using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.Cli;

/// <summary><c>mailops submit</c> and the sendmail entry point: both end in <see cref="MessageSubmitter"/>.</summary>
internal static class SubmitCommands
{
    public static async Task<int> SubmitAsync(string[] args, CancellationToken cancellationToken)
    {
        var a = CliArgs.Parse(args, ["--queue", "--config", "-f", "--from", "-F", "--name"], ["-t", "-i", "--create"]);
        var (config, queuePath) = QueueLocation.Load(a.Value("--config"), a.Value("--queue"), client: true);
        if (MaildropClient.MustUseMaildrop(queuePath))
        {
            // The same submission as a sendmail command line, for the drop helper.
            var sendmail = new List<string> { "-i" };
            if ((a.Value("-f") ?? a.Value("--from")) is { } from) sendmail.AddRange(["-f", from]);
            if ((a.Value("-F") ?? a.Value("--name")) is { } name) sendmail.AddRange(["-F", name]);
            if (a.Flag("-t")) sendmail.Add("-t");
            sendmail.Add("--");
            sendmail.AddRange(a.Positional);
            return await DropStdinAsync(queuePath, sendmail, cancellationToken);
        }
        return await EnqueueStdinAsync(config, queuePath, new SubmissionRequest
        {
            Sender = a.Value("-f") ?? a.Value("--from"),
            FullName = a.Value("-F") ?? a.Value("--name"),
            Recipients = a.Positional,
            RecipientsFromHeaders = a.Flag("-t"),
            DotEndsInput = false, // a file is a file; only the sendmail interface has the lone-dot convention
            Origin = MessageOrigin.Submit,
            HostName = config.HostName,
            DefaultDomain = config.EffectiveDefaultDomain,
            PlusDomain = config.PlusDomain,
            MaxMessageSize = config.MaxMessageSize,
        }, printId: true, cancellationToken, create: a.Flag("--create"));
    }

    public static async Task<int> SendmailAsync(string[] args, CancellationToken cancellationToken)
    {
        var a = SendmailArgs.Parse(args);
        var (config, queuePath) = QueueLocation.Load(a.ConfigPath, null, client: true);
        if (a.ListQueue) return QueueCommands.List(["--queue", queuePath], Console.Out);
        if (MaildropClient.MustUseMaildrop(queuePath)) return await DropStdinAsync(queuePath, args, cancellationToken);
        return await EnqueueStdinAsync(config, queuePath, SubmissionRequest.FromSendmail(a, config, Environment.UserName),
            printId: false, cancellationToken); // sendmail is silent on success, as callers expect
    }

    /// <summary>A queue this user may not write: through its maildrop (the server queues it; there is no id yet).</summary>
    private static async Task<int> DropStdinAsync(string queuePath, IReadOnlyList<string> sendmailArgs, CancellationToken cancellationToken)
    {
        await using var stdin = Console.OpenStandardInput();
        await MaildropClient.SubmitAsync(queuePath, sendmailArgs, stdin, cancellationToken);
        return ExitCodes.Ok;
    }

    private static async Task<int> EnqueueStdinAsync(MailOpsConfig config, string queuePath, SubmissionRequest request, bool printId, CancellationToken cancellationToken, bool create = false)
    {
        // A mistyped --queue or MAILOPS_QUEUE must not make a new queue that no server serves:
        // the mail would wait there unseen. Temporary (75): the queue may be on its way (a server starting).
        if (!create && !QueueStore.Exists(queuePath))
            throw new CliException(ExitCodes.TempFail, $"there is no queue at {queuePath}: start the server that serves it (mailops serve), or create it with 'mailops submit --create'.");
        using var store = QueueStore.Open(queuePath, new QueueStoreOptions { JournalRetention = config.JournalRetention });
        await using var stdin = Console.OpenStandardInput();
        string id = await MessageSubmitter.SubmitAsync(store, stdin, request, cancellationToken);
        if (printId) Console.Out.WriteLine(id);
        return ExitCodes.Ok;
    }
}
