using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.Cli;

/// <summary><c>mailops queue</c>, <c>trace</c>, <c>hold</c>, <c>release</c>, <c>remove</c>: read and act on any queue, served or not.</summary>
internal static class QueueCommands
{
    public static int List(string[] args, TextWriter stdout)
    {
        var a = CliArgs.Parse(args, ["--queue", "--state"], ["--json", "--shape"]);
        if (a.Positional.Count > 0) throw CliException.Usage($"unexpected argument '{a.Positional[0]}'.");
        MessageState? state = null;
        if (a.Value("--state") is { } s)
        {
            if (!Enum.TryParse<MessageState>(s, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed))
                throw CliException.Usage($"--state must be one of {string.Join(", ", Enum.GetNames<MessageState>())}.");
            state = parsed;
        }
        string path = QueueLocation.Resolve(a.Value("--queue"), client: true);
        QueueLocation.ActAsOwnerOf(path);
        if (MaildropClient.MustUseMaildrop(path))
        {
            // Another user's queue (a system queue): only its server may read it, and shows it as a table.
            if (a.Flag("--json") || a.Flag("--shape") || state is not null)
                throw new CliException(ExitCodes.NoPermission, $"the queue at {path} belongs to another user: only its owner (or root) can list it with --json or --state; mailq shows it through the server.");
            return MaildropClient.ShowQueue(path);
        }
        RequireQueue(path);
        if (!a.Flag("--shape")) ListingProgram.TryBecome(path, state, a.Flag("--json"));
        using var store = QueueStore.Open(path);
        if (a.Flag("--shape")) QueueDomainSummary.WriteShape(stdout, QueueDomainSummary.ByDomain(store.Stream(new QueueFilter { State = state })));
        else QueueListing.Print(store, state, a.Flag("--json"), stdout);
        return ExitCodes.Ok;
    }

    public static int Trace(string[] args, TextWriter stdout)
    {
        var a = CliArgs.Parse(args, ["--queue"], ["--json"]);
        if (a.Positional.Count != 1) throw CliException.Usage("trace takes one queue id or Message-ID.");
        using var store = OpenExisting(a.Value("--queue"));
        string key = a.Positional[0];
        var events = MessageTrace.Read(store, key);
        if (events.Count == 0) throw new CliException(ExitCodes.Failure, $"nothing is known of {key} (never queued here, or its history has expired from the mail log).");
        if (a.Flag("--json"))
        {
            stdout.Flush();
            using var raw = Console.OpenStandardOutput();
            Output.WriteTraceJson(raw, events);
        }
        else foreach (var trace in events.GroupBy(e => e.Id)) Output.WriteTraceTable(stdout, trace.Key, trace.ToList());
        return ExitCodes.Ok;
    }

    /// <summary><c>mailops log</c>: the mail log of the queue, searched, newest first (docs/logging.md).</summary>
    public static int Log(string[] args, TextWriter stdout)
    {
        var a = CliArgs.Parse(args, ["--queue", "--sender", "--recipient", "--message-id", "--id", "--event", "--start", "--end", "--limit"], ["--json"]);
        if (a.Positional.Count > 0) throw CliException.Usage($"unexpected argument '{a.Positional[0]}'.");
        var events = new List<JournalEventType>();
        foreach (var name in a.Values("--event").SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
            events.Add(Enum.TryParse<JournalEventType>(name, ignoreCase: true, out var e) && Enum.IsDefined(e) ? e
                : throw CliException.Usage($"--event: '{name}' is not one of {string.Join(", ", Enum.GetNames<JournalEventType>())}."));
        DateTimeOffset? Time(string flag) => a.Value(flag) is { } v
            ? DateTimeOffset.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeLocal, out var t) ? t
                : throw CliException.Usage($"{flag}: '{v}' is not a date and time (2026-11-28, 2026-11-28T09:00, 2026-11-28T09:00Z).")
            : null;
        int limit = a.Value("--limit") is { } l ? int.TryParse(l, out int n) && n > 0 ? n : throw CliException.Usage($"--limit: '{l}' is not a positive number.") : int.MaxValue;
        using var store = OpenExisting(a.Value("--queue"));
        var query = new MailLogQuery
        {
            Sender = a.Value("--sender"), Recipient = a.Value("--recipient"), MessageId = a.Value("--message-id"), Id = a.Value("--id"),
            Events = events.Count > 0 ? events : null, Start = Time("--start"), End = Time("--end"),
        };
        bool json = a.Flag("--json");
        foreach (var entry in MailLog.Search(store.QueuePath, query).Take(limit))
            stdout.WriteLine(json ? entry.ToJson() : $"{entry.Time.ToLocalTime():yyyy-MM-dd HH:mm:ss.fff} {entry}");
        return ExitCodes.Ok;
    }

    public static async Task<int> ActAsync(string verb, string[] args, CancellationToken cancellationToken)
    {
        var a = CliArgs.Parse(args, ["--queue"], verb == "remove" ? [] : ["--all"]);
        bool all = a.Flag("--all");
        if (all && a.Positional.Count > 0) throw CliException.Usage($"{verb} takes queue ids or --all, not both.");
        if (!all && a.Positional.Count == 0) throw CliException.Usage($"{verb} needs at least one queue id{(verb == "remove" ? "" : ", or --all")}.");
        using var store = OpenExisting(a.Value("--queue"));
        if (all)
        {
            // Every queued message, in batches (as postsuper -H ALL): one sync per batch, not per message.
            int changed = await store.HoldManyAsync(null, hold: verb == "hold", cancellationToken);
            Console.Out.WriteLine($"{changed} {(changed == 1 ? "message" : "messages")} {(verb == "hold" ? "held" : "released")}");
            return ExitCodes.Ok;
        }
        int failures = 0;
        foreach (var id in a.Positional)
        {
            try
            {
                var result = verb switch
                {
                    "hold" => await store.HoldAsync(id, cancellationToken),
                    "release" => await store.ReleaseAsync(id, cancellationToken),
                    _ => await store.RemoveAsync(id, "removed by mailops remove", cancellationToken),
                };
                Console.Out.WriteLine(verb == "remove" ? $"{id} removed" : $"{id} {result.State}");
            }
            catch (QueuedMessageNotFoundException)
            {
                Console.Error.WriteLine($"mailops: no message {id} in the queue.");
                failures++;
            }
        }
        return failures == 0 ? ExitCodes.Ok : ExitCodes.Failure;
    }

    /// <summary>Reading commands do not create a queue where none is: a typo in --queue should say so.</summary>
    private static QueueStore OpenExisting(string? explicitQueue)
    {
        string path = QueueLocation.Resolve(explicitQueue, client: true);
        QueueLocation.ActAsOwnerOf(path);
        RequireQueue(path);
        return QueueStore.Open(path);
    }

    private static void RequireQueue(string path)
    {
        if (!QueueStore.Exists(path)) throw new CliException(ExitCodes.Usage, $"there is no queue at {path}.");
    }
}
