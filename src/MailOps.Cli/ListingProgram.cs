using System.Runtime.InteropServices;
using MailOps.Core.Queue;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops-list</c>, the listing compiled ahead of time, published beside mailops (docs/queue.md,
/// "Listing a long queue"): <c>mailops queue</c> becomes it (exec) once the queue and the account
/// that reads it are settled, so a listing of 100,000 messages needs neither a JIT nor its memory.
/// </summary>
internal static partial class ListingProgram
{
    public const string FileName = "mailops-list";

    /// <summary>
    /// Replaces this process with mailops-list listing <paramref name="queuePath"/>. Returns only
    /// when it cannot (not published beside this program, or exec refused): then the caller lists.
    /// </summary>
    public static void TryBecome(string queuePath, MessageState? state, bool json)
    {
        // Only the mailops program itself: a host that calls the commands (a test) is never replaced.
        if (!OperatingSystem.IsLinux() || System.Reflection.Assembly.GetEntryAssembly()?.GetName().Name != "mailops") return;
        string program = Path.Combine(AppContext.BaseDirectory, FileName);
        if (!File.Exists(program)) return;
        var argv = new List<string?> { program, "--queue", Path.GetFullPath(queuePath) };
        if (state is { } s) argv.AddRange(["--state", s.ToString()]);
        if (json) argv.Add("--json");
        argv.Add(null);
        Console.Out.Flush();
        Console.Error.Flush();
        Exec(program, [.. argv]); // returns only on failure (ENOEXEC, EACCES): listed here instead
    }

    [LibraryImport("libc", EntryPoint = "execv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Exec(string path, string?[] argv);
}
