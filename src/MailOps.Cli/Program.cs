using System.Runtime.InteropServices;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops</c>: the same engines as the PowerShell module, for services, containers and scripts
/// (README.md, "mailops"). Invoked as <c>sendmail</c> (a symlink) or <c>mailq</c>, it behaves as those.
/// </summary>
public static class Program
{
    private const string Usage = """
        usage: mailops COMMAND [options]

          serve   [--config F] [--queue DIR] [--listen IP:PORT]... [--hostname NAME] [--no-delivery]
                  [--local-domain D]... [--relay-domain D]... [--mailbox A]... [--relay-client CIDR]...
                  [--maildir-root DIR] [--smarthost H[:P]] [--smarthost-tls MODE] [--dns-server H[:P]]... [--remote-port N]
                  [--default-domain D] [--max-message-size N] [--hold-incoming] [--no-tls] [--metrics IP:PORT]
                  [--capture]   (a test server: keeps mail from loopback clients for any recipient, relays nothing)
                                                              SMTP listener and delivery in the foreground (Ctrl+C / SIGTERM stop gracefully)
          queue   [--queue DIR] [--state S] [--json | --shape]
                                                              list queued mail; --shape: recipients by destination and age (qshape)
          submit  [--queue DIR] [--create] [-f SENDER] [-F NAME] [-t] [-i] [RCPT...] < message
                                                              enqueue a message from stdin; prints its queue id
          flush   [--queue DIR] [--config F] [--id ID]... [--wait] [--json]
                                                              deliver now: wakes the running server, or runs one delivery pass
          mx      DOMAIN [--dns HOST:PORT]... [--json]        the route mail for DOMAIN would take
          trace   ID|MESSAGE-ID [--queue DIR] [--json]        the journey of a message
          log     [--sender A] [--recipient A] [--message-id M] [--id ID] [--event E[,E]] [--start T] [--end T]
                  [--limit N] [--queue DIR] [--json]          search the mail log, newest first (patterns take * and ?)
          hold    ID...|--all [--queue DIR]                   hold: not delivered, never expires
          release ID...|--all [--queue DIR]                   release held mail (--all: every message, as postsuper -H ALL)
          remove  ID... [--queue DIR]                         remove from the queue
          sendmail [sendmail options] [RCPT...]               the sendmail interface (also: invoke as 'sendmail')
          passwd  [--iterations N] < password                 salted hash for a Users entry of the configuration
          dkim    keygen --domain D --selector S [--algorithm rsa|ed25519] | list [--domain D]   [--queue DIR]
                                                              DKIM keys of the queue, and the TXT records to publish
          domain  check DOMAIN [--address IP]... [--dns HOST:PORT]... [--json]
                                                              what DOMAIN must publish (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, HELO, PTR); exit 1 on a failure
          install [--root DIR] [--user U] [--drop-group G] [--queue DIR] [--maildir-root DIR] [--listen IP:PORT]...
                  [--hostname NAME] [--from DIR] [--force]    set up the system MTA: account, queue, maildrop, sendmail, systemd unit (root)
          uninstall [--root DIR] [--user U] [--drop-group G] [--purge]
                                                              undo install; keeps the queue and configuration unless --purge

        The queue is --queue, else $MAILOPS_QUEUE, else ~/.local/share/mailops/queue; for submit, sendmail,
        queue and mailq of an installed mailops, the system queue when that user has no queue of their own.
        A queue another user owns (the system queue) is handed mail through its maildrop.
        Exit codes: 0 ok, 64 usage, 65 bad message, 75 temporary failure, 78 configuration error.
        Every configuration key is in docs/configuration.md.
        """;

    public static async Task<int> Main(string[] args)
    {
        string invokedAs = Path.GetFileName(InvocationName());
        string prefix = invokedAs.StartsWith("sendmail", StringComparison.Ordinal) ? "sendmail"
                      : invokedAs.StartsWith("mailq", StringComparison.Ordinal) ? "mailq" : "mailops";
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cancel.Cancel(); });
        try
        {
            if (prefix == "sendmail") return await SubmitCommands.SendmailAsync(args, cancel.Token);
            if (prefix == "mailq") return QueueCommands.List([], Console.Out);
            if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
            {
                (args.Length == 0 ? Console.Error : Console.Out).WriteLine(Usage);
                return args.Length == 0 ? ExitCodes.Usage : ExitCodes.Ok;
            }
            var rest = args[1..];
            return args[0] switch
            {
                "--version" or "version" => Version(),
                "queue" => QueueCommands.List(rest, Console.Out),
                "submit" => await SubmitCommands.SubmitAsync(rest, cancel.Token),
                "sendmail" => await SubmitCommands.SendmailAsync(rest, cancel.Token),
                "trace" => QueueCommands.Trace(rest, Console.Out),
                "log" => QueueCommands.Log(rest, Console.Out),
                "hold" or "release" or "remove" => await QueueCommands.ActAsync(args[0], rest, cancel.Token),
                "serve" => await ServeCommand.RunAsync(rest, cancel.Token),
                "flush" => await DeliveryCommands.FlushAsync(rest, cancel.Token),
                "mx" => await DeliveryCommands.MxAsync(rest, cancel.Token),
                "passwd" => PasswdCommand.Run(rest, Console.In, Console.Out),
                "install" => InstallCommand.Install(rest),
                "dkim" => DkimCommand.Run(rest, Console.Out),
                "domain" => await DomainCommand.RunAsync(rest, cancel.Token),
                "uninstall" => InstallCommand.Uninstall(rest),
                _ => throw CliException.Usage($"unknown command '{args[0]}'. Run 'mailops help'."),
            };
        }
        catch (CliException ex)
        {
            Console.Error.WriteLine($"{prefix}: {ex.Message}");
            return ex.ExitCode;
        }
        catch (SendmailUsageException ex)
        {
            Console.Error.WriteLine($"{prefix}: {ex.Message}");
            return ExitCodes.Usage;
        }
        catch (SubmissionException ex)
        {
            Console.Error.WriteLine($"{prefix}: {ex.Message}");
            return ex.Kind switch
            {
                SubmissionErrorKind.Usage => ExitCodes.Usage,
                SubmissionErrorKind.BadMessage => ExitCodes.DataError,
                _ => ExitCodes.TempFail,
            };
        }
        catch (QueueFailureException ex)
        {
            Console.Error.WriteLine($"{prefix}: {ex.Message}");
            return ex.IsTransient ? ExitCodes.TempFail : ExitCodes.DataError;
        }
        catch (ConfigException ex)
        {
            Console.Error.WriteLine($"{prefix}: configuration error: {ex.Message}");
            return ExitCodes.Config;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"{prefix}: interrupted.");
            return ExitCodes.TempFail;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A file-system failure no command classified (a full disk, a permission): temporary,
            // one line, never a stack trace. Whatever was half-written has been abandoned.
            Console.Error.WriteLine($"{prefix}: {ex.Message}");
            return ExitCodes.TempFail;
        }
    }

    private static int Version()
    {
        Console.WriteLine("mailops " + typeof(Program).Assembly.GetName().Version?.ToString(3));
        return ExitCodes.Ok;
    }

    /// <summary>argv[0] as the user typed it: the .NET host hides it, /proc does not.</summary>
    private static string InvocationName()
    {
        try
        {
            if (OperatingSystem.IsLinux())
            {
                var cmdline = File.ReadAllBytes("/proc/self/cmdline");
                int end = Array.IndexOf(cmdline, (byte)0);
                var argv0 = System.Text.Encoding.UTF8.GetString(cmdline, 0, end < 0 ? cmdline.Length : end);
                // Run as "dotnet mailops.dll": the name is the dll's.
                if (Path.GetFileNameWithoutExtension(argv0) != "dotnet") return argv0;
            }
        }
        catch (IOException) { }
        return Environment.GetCommandLineArgs()[0];
    }
}
