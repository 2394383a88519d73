using MailOps.Core.Config;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops passwd</c>: reads a password (first line of stdin) and prints the salted hash to
/// put in a Users entry of the configuration (docs/configuration.md). The password never reaches disk.
/// </summary>
internal static class PasswdCommand
{
    public static int Run(string[] args, TextReader input, TextWriter output)
    {
        var a = CliArgs.Parse(args, ["--iterations"], []);
        int iterations = PasswordHash.DefaultIterations;
        if (a.Value("--iterations") is { } text && (!int.TryParse(text, out iterations) || iterations < 1000))
            throw CliException.Usage("--iterations must be a number of at least 1000.");
        if (a.Positional.Count > 0) throw CliException.Usage("usage: mailops passwd [--iterations N] < password");
        string? password = input.ReadLine();
        if (string.IsNullOrEmpty(password)) throw CliException.Usage("no password on stdin.");
        output.WriteLine(PasswordHash.Create(password, iterations));
        return ExitCodes.Ok;
    }
}
