using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Hosting;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>
/// Send-QueuedMail: a flush. Selected deferred recipients become due now; a server running on
/// the queue (in any process) is woken, or, with none, this runs one delivery pass itself (for
/// scheduled jobs). With -Wait it shows progress and returns a result per recipient.
/// </summary>
[Cmdlet(VerbsCommunications.Send, "QueuedMail", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(FlushResult))]
public sealed class SendQueuedMailCommand : MailOpsCmdlet
{
    private readonly IdsByQueue _selected = new();
    private bool _all;

    /// <summary>Messages to flush; without -Id, -Domain or pipeline input, every message with a recipient waiting.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueueIdCompleter))]
    public string[]? Id { get; set; }

    /// <summary>Only messages with a recipient waiting at this domain ('*' and '?' wildcards).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueueDomainCompleter))]
    [SupportsWildcards]
    public string? Domain { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QueuePathCompleter))]
    public string? QueuePath { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ConfigPath { get; set; }

    /// <summary>Wait until every selected recipient was attempted, showing progress, and return the results.</summary>
    [Parameter]
    public SwitchParameter Wait { get; set; }

    protected override void ProcessRecord()
    {
        if (Id is null && Domain is null) _all = true;
        else if (Id is not null) _selected.Add(QueuePath, Id);
        else _selected.Add(QueuePath, []);
    }

    // One flush per queue after all pipeline input: Get-MailQueue | Send-QueuedMail makes one pass.
    private protected override string StoppingDetail =>
        "Waiting for the deliveries in flight to finish (at most 20 s); mail not yet tried stays queued.";

    protected override void EndProcessing()
    {
        var groups = _selected.Groups.ToList();
        if (_all && !groups.Any(g => g.Queue == QueuePath)) groups.Add((QueuePath, []));
        foreach (var (queue, ids) in groups) Flush(queue, ids);
    }

    private void Flush(string? queuePath, List<string> ids)
    {
        MailOpsConfig config;
        try
        {
            config = LoadConfig(ConfigPath, queuePath).Config;
        }
        catch (ConfigException ex)
        {
            WriteError(Errors.InvalidConfiguration(ex));
            return;
        }
        using var store = OpenExistingQueue(queuePath);
        if (store is null) return;
        List<string>? selection = ids.Count > 0 ? ids : null;
        if (Domain is not null)
            selection = store.List(new QueueFilter { Ids = selection, Domain = Domain }).Select(m => m.Id).ToList();
        string what = selection is null ? $"every waiting message in {store.QueuePath}" : $"{selection.Count} message(s) in {store.QueuePath}";
        if (!ShouldProcess(what, "Deliver now")) return;
        if (selection is { Count: 0 }) return;

        var log = new MemoryLog();
        (int Done, int Total) latest = (0, 0);
        var progress = new SynchronousProgress(p => latest = p);
        var report = Bridge(QueueFlush.RunWithMemoryLogAsync(config, store, selection, Wait.IsPresent, log, progress, Cancellation), log, () =>
            latest.Total == 0 ? null : new ProgressRecord(1, "Send-QueuedMail", $"{latest.Done} of {latest.Total} recipients attempted")
            {
                PercentComplete = Math.Min(100, latest.Done * 100 / latest.Total),
            });
        WriteProgress(new ProgressRecord(1, "Send-QueuedMail", "done") { RecordType = ProgressRecordType.Completed });
        WriteVerbose(report.Served
            ? $"Woke the server of {store.QueuePath} for {report.Messages} message(s)."
            : $"No server runs on {store.QueuePath}: delivered {report.Messages} message(s) in this session.");
        foreach (var result in report.Results)
        {
            if (result.Outcome == FlushOutcome.NotQueued)
                WriteError(Errors.MessageNotFound(new QueuedMessageNotFoundException(result.Id), result.Id));
            else WriteObject(result);
        }
    }

    /// <summary>Ids grouped by the queue they came from, in the order first seen (pipeline input may mix queues).</summary>
    private sealed class IdsByQueue
    {
        private readonly List<(string? Queue, List<string> Ids)> _groups = new();

        public void Add(string? queuePath, IEnumerable<string> ids)
        {
            var group = _groups.FirstOrDefault(g => string.Equals(g.Queue, queuePath, StringComparison.Ordinal));
            if (group.Ids is null) _groups.Add(group = (queuePath, new List<string>()));
            group.Ids.AddRange(ids.Where(id => !group.Ids.Contains(id, StringComparer.Ordinal)));
        }

        public IReadOnlyList<(string? Queue, List<string> Ids)> Groups => _groups;
    }

    /// <summary>Progress&lt;T&gt; posts to the pool; the bridge only needs the latest figure.</summary>
    private sealed class SynchronousProgress(Action<(int Done, int Total)> report) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => report(value);
    }
}
