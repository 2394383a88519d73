using System.Text.Json;
using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Delivery.Remote;
using MailOps.Core.Queue;

namespace MailOps.Cli;

/// <summary><c>mailops flush</c> and <c>mailops mx</c> (README.md, "mailops").</summary>
internal static class DeliveryCommands
{
    /// <summary>Exit 0 when everything attempted was delivered, 75 when some recipient is still queued, 1 when some bounced (and none is queued).</summary>
    public static async Task<int> FlushAsync(string[] args, CancellationToken cancellationToken)
    {
        var a = CliArgs.Parse(args, ["--queue", "--config", "--id"], ["--wait", "--json"]);
        if (a.Positional.Count > 0) throw CliException.Usage($"unexpected argument '{a.Positional[0]}' (give ids with --id).");
        var (config, queuePath) = QueueLocation.Load(a.Value("--config"), a.Value("--queue"));
        QueueLocation.ActAsOwnerOf(queuePath);
        if (!QueueStore.Exists(queuePath)) throw new CliException(ExitCodes.Usage, $"there is no queue at {queuePath}.");
        using var store = QueueStore.Open(queuePath, new QueueStoreOptions { JournalRetention = config.JournalRetention });
        var ids = a.Values("--id").Count > 0 ? a.Values("--id").ToList() : null;
        bool json = a.Flag("--json");
        var progress = json || Console.IsErrorRedirected ? null : new Progress<(int Done, int Total)>(p => Console.Error.Write($"\rmailops: {p.Done}/{p.Total} recipients attempted "));
        var report = await QueueFlush.RunAsync(config, store, ids, a.Flag("--wait"), new StderrLogger(), progress, cancellationToken);
        if (progress is not null) Console.Error.Write("\r\x1b[K");

        if (json) WriteJson(report);
        else if (report.Served && !a.Flag("--wait"))
            Console.Out.WriteLine($"flush: {report.Messages} message{(report.Messages == 1 ? "" : "s")} made due; the running server delivers them (--wait to see the results).");
        else WriteTable(report);

        var outcomes = report.Results.Select(r => r.Outcome).ToList();
        if (outcomes.Any(o => o is FlushOutcome.Deferred or FlushOutcome.Waiting)) return ExitCodes.TempFail;
        if (outcomes.Any(o => o is FlushOutcome.Bounced or FlushOutcome.NotQueued)) return ExitCodes.Failure;
        return ExitCodes.Ok;
    }

    private static void WriteTable(FlushReport report)
    {
        foreach (var r in report.Results)
        {
            var parts = new List<string> { r.Id, r.Outcome.ToString() };
            if (r.Recipient is not null) parts.Add("<" + r.Recipient + ">");
            if (r.Host is not null) parts.Add(r.Host);
            if (r.Status is not null) parts.Add(r.Status);
            if (r.Detail is not null) parts.Add(r.Detail);
            Console.Out.WriteLine(string.Join("  ", parts));
        }
        var counts = report.Results.GroupBy(r => r.Outcome).Select(g => $"{g.Count()} {g.Key.ToString().ToLowerInvariant()}");
        Console.Out.WriteLine($"-- {report.Messages} message{(report.Messages == 1 ? "" : "s")} flushed{(report.Served ? " by the running server" : "")}: {string.Join(", ", counts.DefaultIfEmpty("nothing to deliver"))}");
    }

    private static void WriteJson(FlushReport report)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, Output.JsonOptions))
        {
            w.WriteStartArray();
            foreach (var r in report.Results)
            {
                w.WriteStartObject();
                w.WriteString("id", r.Id);
                if (r.Recipient is not null) w.WriteString("recipient", r.Recipient);
                w.WriteString("outcome", r.Outcome.ToString());
                if (r.Status is not null) w.WriteString("status", r.Status);
                if (r.Host is not null) w.WriteString("host", r.Host);
                if (r.Detail is not null) w.WriteString("detail", r.Detail);
                if (r.Time is { } t) w.WriteString("time", t);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        stdout.WriteByte((byte)'\n');
    }

    /// <summary>Exit 0 when mail for the domain can go somewhere, 75 when it would be deferred, 1 when it would bounce.</summary>
    public static async Task<int> MxAsync(string[] args, CancellationToken cancellationToken)
    {
        var a = CliArgs.Parse(args, ["--queue", "--config", "--dns"], ["--json"]);
        if (a.Positional.Count != 1) throw CliException.Usage("mx takes one domain.");
        var (config, _) = QueueLocation.Load(a.Value("--config"), a.Value("--queue"));
        if (a.Values("--dns").Count > 0) config.DnsServers = a.Values("--dns").ToList();
        config.Validate("--dns");
        using var router = MxRouter.ForConfig(config);
        var route = await router.RouteAsync(a.Positional[0], cancellationToken);

        if (a.Flag("--json"))
        {
            using var stdout = Console.OpenStandardOutput();
            using (var w = new Utf8JsonWriter(stdout, Output.JsonOptions))
            {
                w.WriteStartObject();
                w.WriteString("domain", route.Domain);
                w.WriteString("kind", route.Kind.ToString());
                w.WriteString("source", route.Source);
                if (route.Status is not null) w.WriteString("status", route.Status);
                if (route.Reason is not null) w.WriteString("reason", route.Reason);
                w.WriteStartArray("hosts");
                foreach (var h in route.Hosts)
                {
                    w.WriteStartObject();
                    w.WriteString("name", h.Name);
                    w.WriteNumber("preference", h.Preference);
                    w.WriteNumber("port", h.Port);
                    w.WriteStartArray("addresses");
                    foreach (var ip in h.Addresses) w.WriteStringValue(ip.ToString());
                    w.WriteEndArray();
                    if (h.Error is not null) w.WriteString("error", h.Error);
                    w.WriteString("tls", MailExchanger.TlsOf(route, h));
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            stdout.WriteByte((byte)'\n');
        }
        else
        {
            Console.Out.WriteLine(route.Kind switch
            {
                RouteKind.Remote => $"{route.Domain}: {route.Source}",
                RouteKind.Local => $"{route.Domain}: local (Maildir delivery on this server)",
                _ => $"{route.Domain}: {route.Kind.ToString().ToLowerInvariant()} {route.Status} {route.Reason}",
            });
            foreach (var h in route.Hosts)
                Console.Out.WriteLine($"  {h.Preference,5}  {h.Name}:{h.Port}  " + (h.Addresses.Count > 0 ? string.Join(", ", h.Addresses) + $"  TLS: {MailExchanger.TlsOf(route, h)}" : "(" + h.Error + ")"));
            if (route.Kind == RouteKind.Remote && route.Reason is not null) Console.Out.WriteLine("  note: " + route.Reason);
        }
        return route.Kind switch { RouteKind.Bounce => ExitCodes.Failure, RouteKind.Defer => ExitCodes.TempFail, _ => ExitCodes.Ok };
    }
}
