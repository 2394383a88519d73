using System.Net;
using System.Text.Json;
using MailOps.Core.Config;
using MailOps.Core.Dns;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops domain check DOMAIN [--address IP]... [--dns H:P]... [--json]</c>: what the domain
/// must publish for its mail to be accepted, one line per check with the record to publish.
/// Exit 0 when nothing fails, 1 when a check fails.
/// </summary>
internal static class DomainCommand
{
    public static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        if (args.Length < 2 || args[0] != "check")
            throw CliException.Usage("usage: mailops domain check DOMAIN [--address IP]... [--dns HOST:PORT]... [--queue DIR] [--config F] [--json]");
        var a = CliArgs.Parse(args[1..], ["--queue", "--config", "--dns", "--address"], ["--json"]);
        if (a.Positional.Count != 1) throw CliException.Usage("domain check takes one domain.");
        var (config, queue) = QueueLocation.Load(a.Value("--config"), a.Value("--queue"));
        if (a.Values("--dns").Count > 0) config.DnsServers = a.Values("--dns").ToList();
        config.Validate("--dns");
        var addresses = new List<IPAddress>();
        foreach (var text in a.Values("--address"))
            addresses.Add(IPAddress.TryParse(text, out var ip) ? ip : throw CliException.Usage($"--address '{text}' is not an IP address."));

        var checks = await new MailDomainChecker(config, queue).CheckAsync(a.Positional[0], addresses, cancellationToken);
        if (a.Flag("--json"))
        {
            using var stdout = Console.OpenStandardOutput();
            using (var w = new Utf8JsonWriter(stdout, Output.JsonOptions))
            {
                w.WriteStartArray();
                foreach (var c in checks)
                {
                    w.WriteStartObject();
                    w.WriteString("domain", c.Domain);
                    w.WriteString("check", c.Check);
                    w.WriteString("status", c.Status.ToString());
                    w.WriteString("found", c.Found);
                    w.WriteString("detail", c.Detail);
                    if (c.Record is not null) w.WriteString("record", c.Record);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            stdout.WriteByte((byte)'\n');
        }
        else
        {
            foreach (var c in checks)
            {
                Console.Out.WriteLine($"{c.Status.ToString().ToUpperInvariant(),-4}  {c.Check,-8} {c.Detail}");
                Console.Out.WriteLine($"      {"",-8} found: {c.Found}");
                if (c.Record is not null) Console.Out.WriteLine($"      {"",-8} publish: {c.Record}");
            }
        }
        return checks.Any(c => c.Status == CheckStatus.Fail) ? ExitCodes.Failure : ExitCodes.Ok;
    }
}
