using System.Text;
using MailOps.Core.Delivery;
using MailOps.Core.Queue;

namespace MailOps.Core.Local;

/// <summary>
/// Delivery into a Maildir (qmail-local; the format is D. J. Bernstein's maildir(5)): the message is
/// written to <c>tmp/&lt;unique&gt;</c>, fsynced, then linked into <c>new/&lt;unique&gt;</c> and the
/// directory fsynced, so a reader sees the whole message or nothing. Lines end in LF as Maildir
/// readers expect; <c>Return-Path</c> and <c>Delivered-To</c> are written first, and a message that
/// already carries this Delivered-To is a loop and bounces 5.4.6 (as qmail-local).
/// </summary>
public sealed class MaildirDelivery
{
    private static long _deliveries;
    private readonly string _root;
    private readonly string _hostName;

    public MaildirDelivery(string maildirRoot, string hostName)
    {
        _root = Path.GetFullPath(maildirRoot);
        // '/' and ':' cannot be in a Maildir file name; qmail writes them as \057 and \072.
        _hostName = hostName.Replace("/", "\\057").Replace(":", "\\072");
    }

    public string Root => _root;

    /// <summary>Delivers <paramref name="body"/> (stored form, CRLF) into the mailbox. Never throws for I/O: a failure is a 4.x.x result.</summary>
    public RecipientResult Deliver(string recipient, LocalMailbox mailbox, string sender, Stream body)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        string dir = Path.Combine(_root, mailbox.RelativePath);
        string? tmpPath = null;
        try
        {
            var headers = StoredMessage.ReadHeaderBlock(body) ?? [];
            if (StoredMessage.HasHeader(headers, "Delivered-To", mailbox.DeliveredTo))
                return RecipientResult.Local(recipient, "5.4.6", $"mail loop: the message was already delivered to {mailbox.DeliveredTo}", "maildir");

            foreach (var sub in new[] { "tmp", "new", "cur" })
            {
                if (OperatingSystem.IsWindows()) Directory.CreateDirectory(Path.Combine(dir, sub));
                else Directory.CreateDirectory(Path.Combine(dir, sub), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            string name = UniqueName();
            tmpPath = Path.Combine(dir, "tmp", name);
            using (var file = new FileStream(tmpPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024))
            {
                file.Write(Encoding.UTF8.GetBytes($"Return-Path: <{sender}>\nDelivered-To: {mailbox.DeliveredTo}\n"));
                body.Position = 0;
                CopyWithLf(body, file);
                file.Flush(flushToDisk: true);
            }
            string newPath = Path.Combine(dir, "new", name);
            File.Move(tmpPath, newPath, overwrite: false);
            tmpPath = null;
            DurableFile.SyncDirectory(Path.Combine(dir, "new"));
            return new RecipientResult
            {
                Recipient = recipient,
                Outcome = DeliveryOutcome.Delivered,
                EnhancedCode = "2.0.0",
                Detail = $"delivered to maildir {Path.Combine(mailbox.RelativePath, "new", name)}",
                Host = "maildir",
                DurationMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (tmpPath is not null) try { File.Delete(tmpPath); } catch (IOException) { }
            // A full disk or a permission problem is the operator's to fix: retry later (qmail-local's temporary errors).
            return RecipientResult.Local(recipient, "4.2.0", $"cannot write to maildir {mailbox.RelativePath}: {ex.Message}", "maildir");
        }
    }

    /// <summary>time.M&lt;µs&gt;P&lt;pid&gt;Q&lt;n&gt;.host: unique per host, process and delivery (maildir(5), the modern form).</summary>
    private string UniqueName()
    {
        var now = DateTimeOffset.UtcNow;
        long seconds = now.ToUnixTimeSeconds();
        long micros = (now.UtcTicks / 10) % 1_000_000;
        return $"{seconds}.M{micros}P{Environment.ProcessId}Q{Interlocked.Increment(ref _deliveries)}.{_hostName}";
    }

    /// <summary>Copies, turning each CRLF into LF (a CR alone is kept).</summary>
    private static void CopyWithLf(Stream from, Stream to)
    {
        var input = new byte[64 * 1024];
        var output = new byte[64 * 1024 + 1];
        bool pendingCr = false;
        int read;
        while ((read = from.Read(input, 0, input.Length)) > 0)
        {
            int n = 0;
            for (int i = 0; i < read; i++)
            {
                byte b = input[i];
                if (pendingCr)
                {
                    pendingCr = false;
                    if (b != (byte)'\n') output[n++] = (byte)'\r';
                }
                if (b == (byte)'\r') { pendingCr = true; continue; }
                output[n++] = b;
            }
            to.Write(output, 0, n);
        }
        if (pendingCr) to.WriteByte((byte)'\r');
    }
}
