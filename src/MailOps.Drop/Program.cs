using System.Net.Sockets;
using System.Runtime.InteropServices;
using MailOps.Core.Submission;

[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]

namespace MailOps.Drop;

/// <summary>
/// <c>mailops-drop</c>, installed as <c>sendmail</c> and <c>mailq</c>: what any local user runs to
/// hand in a message (Postfix's postdrop, qmail's qmail-inject). It checks the command line, writes
/// the arguments and stdin into one file in the system queue's maildrop, syncs it, pulls the
/// server's trigger and exits 0. It parses no message and trusts nothing it is given: the server's
/// pickup validates every drop (docs/queue.md, "The maildrop"). Installed setgid to the maildrop
/// group, it ignores the environment and serves only the queue named in system.conf beside it.
/// </summary>
internal static partial class Program
{
    private const int Ok = 0, Usage = 64, DataError = 65, TempFail = 75;

    private static int Main(string[] args)
    {
        string invokedAs = Path.GetFileName(Environment.GetCommandLineArgs()[0]);
        string prefix = invokedAs.StartsWith("mailq", StringComparison.Ordinal) ? "mailq" : "sendmail";
        try
        {
            var parsed = SendmailArgs.Parse(prefix == "mailq" ? ["-bp", .. args] : args);
            string queue = QueueToServe();
            if (parsed.ListQueue) return ShowQueue(queue);
            if (!parsed.ExtractRecipients && parsed.Recipients.Count == 0)
                throw new SendmailUsageException("No recipients given (name them as arguments, or use -t).");
            Drop(queue, args, dotEndsInput: !parsed.IgnoreDots);
            return Ok;
        }
        catch (SendmailUsageException ex)
        {
            Console.Error.WriteLine($"{prefix}: {ex.Message}");
            return Usage;
        }
        catch (TooLargeException ex)
        {
            Console.Error.WriteLine($"{prefix}: {ex.Message}");
            return DataError;
        }
        catch (Exception ex) when (ex is DropException or IOException or UnauthorizedAccessException or SocketException)
        {
            Console.Error.WriteLine($"{prefix}: {ex.Message}");
            return TempFail;
        }
    }

    private sealed class DropException(string message) : Exception(message);
    private sealed class TooLargeException(string message) : Exception(message);

    /// <summary>
    /// The queue named by system.conf beside this executable. $MAILOPS_QUEUE may name another only
    /// when the helper runs without privileges (a development build): a setgid helper must not be
    /// pointed elsewhere by whoever runs it.
    /// </summary>
    private static string QueueToServe()
    {
        bool elevated = Native.getegid() != Native.getgid() || Native.geteuid() != Native.getuid();
        string? installed = DropFile.SystemQueueIn(Path.GetDirectoryName(Environment.ProcessPath) ?? "/");
        string? fromEnvironment = Environment.GetEnvironmentVariable("MAILOPS_QUEUE") is { Length: > 0 } e ? Path.GetFullPath(e) : null;
        if (installed is null)
        {
            if (elevated || fromEnvironment is null)
                throw new DropException($"no system queue is configured ({DropFile.SystemConfName} is missing beside {Environment.ProcessPath}; see 'mailops install').");
            return fromEnvironment;
        }
        if (fromEnvironment is not null && fromEnvironment.TrimEnd('/') != Path.GetFullPath(installed).TrimEnd('/'))
        {
            if (elevated)
                throw new DropException($"this sendmail hands mail to the system queue at {installed} only, and MAILOPS_QUEUE names {fromEnvironment}.");
            return fromEnvironment;
        }
        return installed;
    }

    private static void Drop(string queue, string[] args, bool dotEndsInput)
    {
        string directory = Path.Combine(queue, DropFile.DirectoryName);
        const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;
        FileStream file;
        string temporary, final;
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                string name = DropFile.NewName(DateTimeOffset.UtcNow);
                (temporary, final) = (Path.Combine(directory, "." + name), Path.Combine(directory, name));
                try
                {
                    // CreateNew is O_CREAT|O_EXCL: it never follows or reuses anything already there.
                    file = new FileStream(temporary, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 0, UnixCreateMode = Mode });
                    break;
                }
                catch (IOException) when (attempt < 3 && File.Exists(temporary)) { } // a clash of names: another one
            }
        }
        catch (DirectoryNotFoundException)
        {
            throw new DropException($"there is no maildrop at {directory} (is MailOps installed? see 'mailops install').");
        }
        catch (UnauthorizedAccessException)
        {
            throw new DropException($"cannot write to the maildrop at {directory}: this program must be setgid to the maildrop's group ('mailops install' sets it up).");
        }
        bool renamed = false;
        try
        {
            using (file)
            {
                File.SetUnixFileMode(file.SafeFileHandle, Mode); // whatever the umask: the server reads it through the group
                file.Write(DropFile.Header(DropFile.SendmailMode, args));
                long length = CopyStdin(file, dotEndsInput, DropFile.MaxDropSize(queue) ?? long.MaxValue);
                file.Write(DropFile.Trailer(length));
                File.Move(temporary, final, overwrite: true); // rename(2); the name is new
                renamed = true;
                // One sync for the data and the name: on a journaling file system (ext4, xfs) an
                // fsync commits the rename too (the helper cannot open the maildrop to sync it:
                // the group may write there, not list). Should the machine stop before it, the
                // drop is cut short and the pickup refuses it; sendmail had not said 0 then.
                file.Flush(flushToDisk: true);
            }
        }
        catch when (!renamed)
        {
            try { File.Delete(temporary); } catch (IOException) { }
            throw;
        }
        PullTrigger(queue);
    }

    /// <summary>
    /// Copies stdin; without -i a line holding a single dot ends the input (it is kept: the pickup
    /// stops there too). More than the server takes (its maildrop.limits) is refused at once.
    /// </summary>
    private static long CopyStdin(FileStream file, bool dotEndsInput, long max)
    {
        using var stdin = Console.OpenStandardInput();
        var buffer = new byte[64 * 1024];
        long total = 0;
        int state = 1; // 0 inside a line, 1 at a line's start, 2 after a leading dot, 3 after ".\r"
        int read;
        while ((read = stdin.Read(buffer)) > 0)
        {
            int take = read;
            if (dotEndsInput)
            {
                for (int i = 0; i < read; i++)
                {
                    byte b = buffer[i];
                    state = (state, b) switch
                    {
                        (2 or 3, (byte)'\n') => -1,
                        (1, (byte)'.') => 2,
                        (2, (byte)'\r') => 3,
                        (_, (byte)'\n') => 1,
                        _ => 0,
                    };
                    if (state == -1) { take = i + 1; break; }
                }
            }
            total += take;
            if (total > max) throw new TooLargeException($"the message is larger than this system takes ({max} octets); nothing was sent.");
            file.Write(buffer, 0, take);
            if (state == -1) break;
        }
        return total;
    }

    /// <summary>Wakes the server's pickup; when no server runs, the drop waits for the next start.</summary>
    private static void PullTrigger(string queue)
    {
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
            socket.SendTo([DropFile.PickupPulse], new UnixDomainSocketEndPoint(DropFile.SocketPath(queue, "trigger")));
        }
        catch (SocketException) { }
    }

    /// <summary>mailq / sendmail -bp: the listing comes from the server, which alone may read the queue.</summary>
    private static int ShowQueue(string queue)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(DropFile.SocketPath(queue, "showq")));
        }
        catch (SocketException ex)
        {
            throw new DropException($"cannot list the queue at {queue}: no server answers ({ex.Message}). Only a running server lists it for other users.");
        }
        socket.Send("table\n"u8);
        using var reply = new NetworkStream(socket, ownsSocket: false);
        using var stdout = Console.OpenStandardOutput();
        reply.CopyTo(stdout);
        return Ok;
    }

    private static partial class Native
    {
        [LibraryImport("libc")] internal static partial uint getuid();
        [LibraryImport("libc")] internal static partial uint geteuid();
        [LibraryImport("libc")] internal static partial uint getgid();
        [LibraryImport("libc")] internal static partial uint getegid();
    }
}
