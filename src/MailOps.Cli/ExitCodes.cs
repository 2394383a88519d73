namespace MailOps.Cli;

/// <summary>sysexits.h, as sendmail and Postfix use them (README.md, "mailops").</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 64;    // EX_USAGE
    public const int DataError = 65; // EX_DATAERR
    public const int TempFail = 75;  // EX_TEMPFAIL
    public const int NoPermission = 77; // EX_NOPERM
    public const int Config = 78;    // EX_CONFIG: the configuration is wrong (sendmail callers know it)
}

/// <summary>A failure that ends the command with a message on stderr and an exit code.</summary>
internal sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
    public static CliException Usage(string message) => new(ExitCodes.Usage, message);
}
