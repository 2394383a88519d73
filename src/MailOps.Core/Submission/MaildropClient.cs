using System.Diagnostics;
using MailOps.Core.Queue;

namespace MailOps.Core.Submission;

/// <summary>
/// How <c>mailops submit</c>, <c>mailops sendmail</c> and Submit-MailMessage hand in a message
/// for a queue they may not write (a system queue owned by its service account): through the
/// drop helper, which alone may write its maildrop (docs/queue.md, "The maildrop"). The server
/// queues the message moments later; there is no queue id to return yet.
/// </summary>
public static class MaildropClient
{
    /// <summary>Where the installed helper lives when it is not beside this program.</summary>
    public const string InstalledHelper = "/usr/lib/mailops/mailops-drop";

    /// <summary>
    /// True when <paramref name="queuePath"/> exists and belongs to another user: only its owner
    /// writes a queue (root too hands in through the maildrop, or the files it made would be
    /// root's, which the server could not read).
    /// </summary>
    public static bool MustUseMaildrop(string queuePath) =>
        OperatingSystem.IsLinux() && Posix.Stat(queuePath) is { } facts && facts.Owner != Posix.EffectiveUserId;

    /// <summary>Names the drop helper to run instead of the installed one (a build's, in tests).</summary>
    public const string HelperVariable = "MAILOPS_DROP_HELPER";

    /// <summary>The drop helper: $MAILOPS_DROP_HELPER, else beside this program (an installation), else where install puts it.</summary>
    public static string? FindHelper()
    {
        if (Environment.GetEnvironmentVariable(HelperVariable) is { Length: > 0 } chosen) return chosen;
        foreach (var candidate in new[] { Path.Combine(AppContext.BaseDirectory, "mailops-drop"), InstalledHelper })
            if (File.Exists(candidate)) return candidate;
        return null;
    }

    /// <summary>Runs the helper with a sendmail command line and <paramref name="message"/> on its stdin.</summary>
    /// <exception cref="SubmissionException">The helper refused (Usage) or could not hand it in (Temporary).</exception>
    public static async Task SubmitAsync(string queuePath, IReadOnlyList<string> sendmailArgs, Stream message, CancellationToken cancellationToken = default)
    {
        CheckAddresses(sendmailArgs);
        string helper = FindHelper() ?? throw new SubmissionException(SubmissionErrorKind.Temporary,
            $"The queue at {queuePath} belongs to another user and no drop helper (mailops-drop) is installed to hand mail to it.");
        var start = new ProcessStartInfo(helper) { RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in sendmailArgs) start.ArgumentList.Add(arg);
        start.Environment["MAILOPS_QUEUE"] = Path.GetFullPath(queuePath);
        using var process = Process.Start(start) ?? throw new SubmissionException(SubmissionErrorKind.Temporary, $"Cannot run {helper}.");
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await message.CopyToAsync(process.StandardInput.BaseStream, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The helper stopped reading (it refused the command line): its exit code says why.
        }
        finally
        {
            try { process.StandardInput.Close(); } catch (IOException) { }
        }
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        string error = (await errors.ConfigureAwait(false)).Trim();
        if (process.ExitCode != 0)
            throw new SubmissionException(process.ExitCode == 64 ? SubmissionErrorKind.Usage : SubmissionErrorKind.Temporary,
                error.Length > 0 ? error : $"{helper} exited with {process.ExitCode}.");
    }

    /// <summary>
    /// The pickup checks everything again, but a caller here can still be told at once: an address
    /// that cannot be right is a usage error now, not a refused drop in the server's log later.
    /// </summary>
    private static void CheckAddresses(IReadOnlyList<string> sendmailArgs)
    {
        SendmailArgs parsed;
        try
        {
            parsed = SendmailArgs.Parse(sendmailArgs);
        }
        catch (SendmailUsageException ex)
        {
            throw new SubmissionException(SubmissionErrorKind.Usage, ex.Message, ex);
        }
        var addresses = parsed.Sender is { } sender && sender.Trim() is not ("" or "<>") ? parsed.Recipients.Prepend(sender) : parsed.Recipients;
        foreach (var address in addresses)
            if (!Addressing.EnvelopeAddress.TryParseCompleting(address, "localhost", null, out _, out var error))
                throw new SubmissionException(SubmissionErrorKind.Usage, $"Bad address '{address}': {error}.");
    }

    /// <summary>mailq for a queue this user may not read: the helper asks the server (its showq) and prints the table.</summary>
    /// <returns>The helper's exit code.</returns>
    public static int ShowQueue(string queuePath)
    {
        string helper = FindHelper() ?? throw new SubmissionException(SubmissionErrorKind.Temporary,
            $"The queue at {queuePath} belongs to another user and no drop helper (mailops-drop) is installed to ask its server.");
        var start = new ProcessStartInfo(helper) { UseShellExecute = false, ArgumentList = { "-bp" } };
        start.Environment["MAILOPS_QUEUE"] = Path.GetFullPath(queuePath);
        using var process = Process.Start(start) ?? throw new SubmissionException(SubmissionErrorKind.Temporary, $"Cannot run {helper}.");
        process.WaitForExit();
        return process.ExitCode;
    }
}
