using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;
using MailOps.Core.Config;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>What the completers share: the queue a command line names (or would use), read without creating it.</summary>
internal static class CompletionQueue
{
    private const int MaxResults = 500;

    /// <summary>The queue of the command being completed: its -QueuePath, else $env:MAILOPS_QUEUE, else the default.</summary>
    public static string PathOf(IDictionary fakeBoundParameters)
    {
        string? given = fakeBoundParameters["QueuePath"] as string;
        if (!string.IsNullOrEmpty(given) && !Path.IsPathRooted(given)) given = Path.Combine(CurrentDirectory(), given);
        return QueueLocation.Resolve(given);
    }

    /// <summary>PowerShell's current file system location (not the process's), when the completion runs in a runspace.</summary>
    public static string CurrentDirectory()
    {
        try { return Runspace.DefaultRunspace?.SessionStateProxy.Path.CurrentFileSystemLocation.ProviderPath ?? Environment.CurrentDirectory; }
        catch (Exception ex) when (ex is InvalidOperationException or PSInvalidOperationException) { return Environment.CurrentDirectory; }
    }

    public static IReadOnlyList<QueuedMail> List(IDictionary fakeBoundParameters)
    {
        string path = PathOf(fakeBoundParameters);
        if (!QueueStore.Exists(path)) return [];
        try
        {
            using var store = QueueStore.Open(path);
            return store.List();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or QueueFailureException)
        {
            return [];
        }
    }

    public static IEnumerable<CompletionResult> Matching(IEnumerable<(string Text, string Tooltip)> candidates, string wordToComplete)
    {
        string prefix = (wordToComplete ?? "").Trim('\'', '"');
        var pattern = new WildcardPattern(prefix + "*", WildcardOptions.IgnoreCase);
        return candidates.Where(c => pattern.IsMatch(c.Text)).Take(MaxResults)
            .Select(c => new CompletionResult(c.Text, c.Text, CompletionResultType.ParameterValue, string.IsNullOrEmpty(c.Tooltip) ? c.Text : c.Tooltip));
    }
}

/// <summary>Completes -Id with the ids of the queued messages (tooltip: state, sender, recipients, subject).</summary>
public sealed class QueueIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        CompletionQueue.Matching(CompletionQueue.List(fakeBoundParameters)
            .Select(m => (m.Id, $"{m.State}  {m.Sender} -> {m.Recipients}  {m.Subject}")), wordToComplete);
}

/// <summary>Completes -Domain with the destination domains that have mail waiting.</summary>
public sealed class QueueDomainCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        CompletionQueue.Matching(QueueDomainSummary.ByDomain(CompletionQueue.List(fakeBoundParameters))
            .Select(s => (s.Domain, $"{s.Domain}: {s.Messages} message(s), {s.Recipients} recipient(s)")), wordToComplete);
}

/// <summary>
/// Completes -QueuePath with the queues in use first (those of the servers running in this
/// session, $env:MAILOPS_QUEUE, the per-user default when it exists), then directories.
/// </summary>
public sealed class QueuePathCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var known = ServerRegistry.All.Select(s => (s.QueuePath, $"served by MailServer {s.Id} ({s.State})"))
            .Append((Environment.GetEnvironmentVariable(QueueLocation.EnvironmentVariable) ?? "", "$env:MAILOPS_QUEUE"))
            .Append((QueueLocation.DefaultQueuePath, "the per-user queue"))
            .Where(q => q.Item1.Length > 0 && QueueStore.Exists(q.Item1))
            .DistinctBy(q => q.Item1)
            .ToList();
        var results = CompletionQueue.Matching(known, wordToComplete)
            .Select(r => new CompletionResult(Quote(r.CompletionText), r.ListItemText, CompletionResultType.ProviderContainer, r.ToolTip)).ToList();
        // Then directories, as the default completion would offer them.
        foreach (var dir in CompletionCompleters.CompleteFilename(wordToComplete ?? ""))
            if (dir.ResultType == CompletionResultType.ProviderContainer && !results.Any(r => r.CompletionText == dir.CompletionText)) results.Add(dir);
        return results;
    }

    private static string Quote(string path) => path.Contains(' ') ? "'" + path.Replace("'", "''") + "'" : path;
}

/// <summary>Completes the -Id of Get-MailServer and Stop-MailServer with the servers running in this session.</summary>
public sealed class MailServerIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        CompletionQueue.Matching(ServerRegistry.All.Select(s => (s.Id.ToString(), $"{s.State} on {string.Join(", ", s.Endpoints)}, queue {s.QueuePath}")), wordToComplete);
}
