namespace MailOps.Core.Submission;

/// <summary>The sendmail command line is wrong (exit 64). Kept free of dependencies: the maildrop helper compiles this file too.</summary>
public sealed class SendmailUsageException(string message) : Exception(message);

/// <summary>
/// The sendmail command line, as PHP's mail() (<c>sendmail -t -i</c>), cron
/// (<c>sendmail -FCronDaemon -i -B8BITMIME -oem user</c>) and most scripts use it. Option values
/// may be attached (<c>-fuser@x</c>) or separate (<c>-f user@x</c>), as with getopt.
/// </summary>
public sealed class SendmailArgs
{
    public string? Sender { get; private set; }
    public string? FullName { get; private set; }
    public bool ExtractRecipients { get; private set; }
    public bool IgnoreDots { get; private set; }
    public string? ConfigPath { get; private set; }
    /// <summary>-bp (or invoked as mailq): list the queue instead of sending.</summary>
    public bool ListQueue { get; private set; }
    public List<string> Recipients { get; } = new();

    public static SendmailArgs Parse(IReadOnlyList<string> args)
    {
        var result = new SendmailArgs();
        int i = 0;
        string NextValue(string option, string attached)
        {
            if (attached.Length > 0) return attached;
            if (++i < args.Count) return args[i];
            throw new SendmailUsageException($"option {option} needs a value.");
        }

        for (; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg == "--") { i++; break; }
            if (arg.Length < 2 || arg[0] != '-') break;
            char option = arg[1];
            string rest = arg[2..];
            switch (option)
            {
                case 't': result.ExtractRecipients = true; RequireNoValue(arg, rest); break;
                case 'i': result.IgnoreDots = true; RequireNoValue(arg, rest); break;
                case 'f': case 'r': result.Sender = NextValue(arg, rest); break;
                case 'F': result.FullName = NextValue(arg, rest); break;
                case 'C': result.ConfigPath = NextValue(arg, rest); break;
                case 'o':
                    // -oi is -i; every other -oX (-oem, -odi, -oQ...) is a sendmail.cf setting with no meaning here.
                    if (rest == "i") result.IgnoreDots = true;
                    else if (rest.Length == 0) throw new SendmailUsageException("option -o needs a letter.");
                    break;
                case 'B': case 'N': case 'R': case 'V': case 'L': NextValue(arg, rest); break; // body type, DSN, log tag: accepted, not needed
                case 'v': case 'm': case 'n': break;
                case 'e': break; // -em, -ep...: error reporting mode
                case 'b':
                    switch (rest)
                    {
                        case "m": break;
                        case "p": result.ListQueue = true; break;
                        default: throw new SendmailUsageException($"mode -b{rest} is not supported (only -bm and -bp).");
                    }
                    break;
                default:
                    throw new SendmailUsageException($"unsupported option {arg}.");
            }
        }
        for (; i < args.Count; i++)
            foreach (var part in args[i].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                result.Recipients.Add(part);
        return result;
    }

    private static void RequireNoValue(string arg, string rest)
    {
        if (rest.Length > 0) throw new SendmailUsageException($"unsupported option {arg}.");
    }
}
