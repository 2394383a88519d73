using MailOps.Core.Config;
using MailOps.Core.Dkim;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops dkim keygen --domain D --selector S [--algorithm rsa|ed25519]</c> and
/// <c>mailops dkim list [--domain D]</c>: the queue's DKIM keys and the TXT records to publish.
/// </summary>
internal static class DkimCommand
{
    public static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length == 0 || args[0] is not ("keygen" or "list"))
            throw CliException.Usage("usage: mailops dkim keygen --domain D --selector S [--algorithm rsa|ed25519] [--queue DIR] | mailops dkim list [--domain D] [--queue DIR]");
        var a = CliArgs.Parse(args[1..], ["--queue", "--domain", "--selector", "--algorithm"], []);
        string queue = QueueLocation.Resolve(a.Value("--queue"));
        QueueLocation.ActAsOwnerOf(queue); // the keys belong to the queue's owner, 0600
        var keys = new DkimKeys(queue);
        if (args[0] == "list")
        {
            var all = keys.List(a.Value("--domain"));
            if (all.Count == 0) stdout.WriteLine("No DKIM keys. Make one with: mailops dkim keygen --domain example.com --selector s1");
            foreach (var key in all) stdout.WriteLine($"{key.RecordName} IN TXT \"{key.TxtRecord}\"   ; {key.Algorithm}, {key.Path}");
            return ExitCodes.Ok;
        }
        string domain = a.Value("--domain") ?? throw CliException.Usage("dkim keygen needs --domain.");
        string selector = a.Value("--selector") ?? throw CliException.Usage("dkim keygen needs --selector.");
        var algorithm = (a.Value("--algorithm") ?? "rsa").ToLowerInvariant() switch
        {
            "rsa" => DkimAlgorithm.Rsa,
            "ed25519" => DkimAlgorithm.Ed25519,
            var other => throw CliException.Usage($"--algorithm must be rsa or ed25519, not '{other}'."),
        };
        DkimKey made;
        try
        {
            made = keys.Generate(domain, selector, algorithm);
        }
        catch (ArgumentException ex)
        {
            throw CliException.Usage(ex.Message);
        }
        catch (IOException) when (keys.List(domain).Any(k => k.Selector == selector.ToLowerInvariant()))
        {
            throw new CliException(ExitCodes.Failure, $"{selector}._domainkey.{domain} exists already; choose a new selector to rotate keys.");
        }
        stdout.WriteLine($"{made.RecordName} IN TXT \"{made.TxtRecord}\"");
        Console.Error.WriteLine($"Publish this record; mail from {made.Domain} is signed with it from now on (private key: {made.Path}).");
        return ExitCodes.Ok;
    }
}
