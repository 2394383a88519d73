using System.Security.Cryptography;
using System.Text;

namespace MailOps.Core.Submission;

/// <summary>
/// The maildrop (docs/queue.md, "The maildrop"): how a local user who cannot write the queue hands
/// in a message. The drop helper (<c>mailops-drop</c>, installed as <c>sendmail</c>) writes one
/// file per message; the server's pickup validates it as untrusted input and queues it.
/// Kept free of dependencies: the NativeAOT helper compiles this file too.
/// </summary>
/// <remarks>
/// A drop file is <c>MAILOPS-DROP/1 NUL mode NUL arg NUL ... arg NUL NUL</c>, then the message
/// exactly as read from the submitter's stdin, then a trailer <c>NUL MAILOPS-END/ 16-hex-digit
/// body length LF</c>, so a cut-short file is recognised. The mode is <c>sendmail</c>: the
/// arguments are a sendmail command line. Who submitted it is the file's owner (the kernel says
/// so, not the file); a drop is written under a name starting with '.' and renamed when complete.
/// </remarks>
public static class DropFile
{
    /// <summary>The maildrop directory inside a queue.</summary>
    public const string DirectoryName = "maildrop";
    /// <summary>The file beside installed binaries that names the system queue (written by <c>mailops install</c>).</summary>
    public const string SystemConfName = "system.conf";
    /// <summary>The file in the queue where the server publishes the largest drop it takes (<c>max-size=N</c>), for the helper.</summary>
    public const string LimitsName = "maildrop.limits";
    /// <summary>The trigger byte that asks the server to look in the maildrop.</summary>
    public const byte PickupPulse = 3;
    /// <summary>The mode of a drop made by the sendmail interface.</summary>
    public const string SendmailMode = "sendmail";

    private static ReadOnlySpan<byte> Magic => "MAILOPS-DROP/1\0"u8;
    private static ReadOnlySpan<byte> TrailerMagic => "\0MAILOPS-END/"u8;
    /// <summary>Octets of the trailer: its magic, 16 hex digits and a line feed.</summary>
    public static int TrailerLength => TrailerMagic.Length + 16 + 1;

    /// <summary>
    /// A fresh drop name: a time prefix (picked up oldest first) and 64 bits that only need to be
    /// unique, not secret (nobody but the server can list or open drops; the helper creates with
    /// O_EXCL and tries another name on a clash). Not from the crypto library: loading OpenSSL
    /// would cost each sendmail call milliseconds.
    /// </summary>
    public static string NewName(DateTimeOffset now) =>
        "d" + now.ToUnixTimeMilliseconds().ToString("x12") + ((ulong)Random.Shared.NextInt64() ^ ((ulong)Environment.ProcessId << 40)).ToString("x16");

    /// <summary>True for the name of a complete drop (the helper renames it so once written).</summary>
    public static bool IsDropName(string name) => name.Length == 29 && name[0] == 'd' && name.AsSpan(1).IndexOfAnyExcept("0123456789abcdef") < 0;

    public static byte[] Header(string mode, IReadOnlyList<string> args)
    {
        var header = new MemoryStream();
        header.Write(Magic);
        foreach (var part in args.Prepend(mode))
        {
            var bytes = Encoding.UTF8.GetBytes(part);
            if (Array.IndexOf(bytes, (byte)0) >= 0) throw new ArgumentException("An argument contains a NUL character.");
            header.Write(bytes);
            header.WriteByte(0);
        }
        header.WriteByte(0);
        return header.ToArray();
    }

    public static byte[] Trailer(long bodyLength) => [.. TrailerMagic, .. Encoding.ASCII.GetBytes(bodyLength.ToString("x16")), (byte)'\n'];

    /// <summary>Reads the header at the start of a drop.</summary>
    /// <returns>Null and the reason when it is not a drop header within <paramref name="start"/>.</returns>
    public static (string Mode, List<string> Args, int Length)? ReadHeader(ReadOnlySpan<byte> start, int maxArgs, out string? error)
    {
        error = null;
        if (!start.StartsWith(Magic))
        {
            error = start.Length < Magic.Length ? "too short to be a drop" : "not a drop file (no MAILOPS-DROP/1 header)";
            return null;
        }
        var parts = new List<string>();
        int at = Magic.Length;
        while (true)
        {
            int nul = start[at..].IndexOf((byte)0);
            if (nul < 0)
            {
                error = "the drop header is unterminated or too long";
                return null;
            }
            if (nul == 0) break;
            if (parts.Count > maxArgs)
            {
                error = $"more than {maxArgs} arguments";
                return null;
            }
            parts.Add(Encoding.UTF8.GetString(start.Slice(at, nul)));
            at += nul + 1;
        }
        if (parts.Count == 0)
        {
            error = "the drop header names no mode";
            return null;
        }
        return (parts[0], parts.GetRange(1, parts.Count - 1), at + 1);
    }

    /// <summary>The body length the trailer declares, or null when <paramref name="end"/> is not a trailer.</summary>
    public static long? ReadTrailer(ReadOnlySpan<byte> end)
    {
        if (end.Length != TrailerLength || !end.StartsWith(TrailerMagic) || end[^1] != '\n') return null;
        var digits = Encoding.ASCII.GetString(end.Slice(TrailerMagic.Length, 16));
        return long.TryParse(digits, System.Globalization.NumberStyles.AllowHexSpecifier, null, out long length) && length >= 0 ? length : null;
    }

    /// <summary>The largest drop the server of <paramref name="queuePath"/> takes, or null when it has not said.</summary>
    public static long? MaxDropSize(string queuePath)
    {
        try
        {
            foreach (var line in File.ReadLines(Path.Combine(queuePath, LimitsName)))
                if (line.StartsWith("max-size=", StringComparison.Ordinal) && long.TryParse(line.AsSpan(9), out long max) && max > 0) return max;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>The queue a <c>system.conf</c> names (<c>queue=/var/spool/mailops</c>), or null.</summary>
    public static string? SystemQueueIn(string directory)
    {
        string path = Path.Combine(directory, SystemConfName);
        if (!File.Exists(path)) return null;
        foreach (var line in File.ReadLines(path))
            if (line.StartsWith("queue=", StringComparison.Ordinal) && line.Length > 6) return line[6..].Trim();
        return null;
    }

    /// <summary>
    /// The path of one of the queue's Unix sockets (<c>trigger</c>, <c>showq</c>): inside the queue,
    /// or in the temp directory when that path is too long for sun_path.
    /// </summary>
    public static string SocketPath(string queuePath, string name)
    {
        string path = Path.Combine(Path.GetFullPath(queuePath), name);
        if (Encoding.UTF8.GetByteCount(path) < 100) return path;
        return Path.Combine(Path.GetTempPath(), $"mailops-{name}-{QueueHash(queuePath)}.sock");
    }

    /// <summary>A short stable name for a queue path.</summary>
    public static string QueueHash(string queuePath)
    {
        string full = Path.GetFullPath(queuePath).TrimEnd(Path.DirectorySeparatorChar);
        if (OperatingSystem.IsWindows()) full = full.ToUpperInvariant();
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(full)), 0, 8).ToLowerInvariant();
    }
}
