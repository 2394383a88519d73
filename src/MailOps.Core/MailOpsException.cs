namespace MailOps.Core;

/// <summary>
/// The base of every failure MailOps classifies where it happens (house style 4): whether trying
/// again later can succeed. Callers map it once: the listener to a 4xx or 5xx reply, the CLI to
/// exit 75 or a permanent code, the cmdlets to an ErrorRecord category.
/// </summary>
public abstract class MailOpsException : Exception
{
    protected MailOpsException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>True when the same request can succeed later (a full disk, a busy resource), false when it never will.</summary>
    public abstract bool IsTransient { get; }

    /// <summary>True when a full disk (ENOSPC, ERROR_DISK_FULL) is behind this failure.</summary>
    public bool IsDiskFull => IsDiskFullError(this);

    internal static bool IsDiskFullError(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is not IOException io) continue;
            int code = io.HResult;
            if (OperatingSystem.IsWindows() ? (code & 0xFFFF) is 0x70 or 0x27 : code == 28 /* ENOSPC */) return true;
            if (io.Message.Contains("No space left on device", StringComparison.Ordinal)) return true;
        }
        return false;
    }
}
