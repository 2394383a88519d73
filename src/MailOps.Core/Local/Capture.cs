using MailOps.Core.Delivery;
using MailOps.Core.Queue;

namespace MailOps.Core.Local;

/// <summary>
/// Where a capturing test server keeps what it accepted (docs/testing.md): <c>&lt;queue&gt;/capture/</c>,
/// one <c>&lt;id&gt;.eml</c> per message (the octets as queued, our Received field first) beside
/// <c>&lt;id&gt;.json</c>, its envelope as the queue kept it. The .eml is renamed into place last,
/// so a message is there whole or not at all.
/// </summary>
public static class CaptureStore
{
    /// <summary>
    /// The queue a server starts on: <paramref name="queuePath"/> when given; for a capturing server
    /// with no queue of its own (no path, no configuration file, no MAILOPS_QUEUE) a new, empty one
    /// in the temporary directory, never the user's; otherwise null (the usual resolution).
    /// </summary>
    public static string? QueuePathFor(bool capture, string? queuePath, string? configPath) =>
        queuePath ?? (capture && configPath is null && Environment.GetEnvironmentVariable("MAILOPS_QUEUE") is null
            ? Path.Combine(Path.GetTempPath(), "mailops-capture-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8])
            : null);

    /// <summary>The capture directory of a queue.</summary>
    public static string DirectoryOf(string queuePath) => Path.Combine(queuePath, "capture");

    /// <summary>Keeps one message; a message already kept (a second job of the same message) is left as it is.</summary>
    internal static void Save(string queuePath, Envelope envelope, Stream body)
    {
        string dir = DirectoryOf(queuePath);
        DurableFile.CreatePrivateDirectory(dir);
        string eml = Path.Combine(dir, envelope.Id + ".eml");
        if (File.Exists(eml)) return;
        string suffix = "." + Environment.ProcessId + "." + Environment.CurrentManagedThreadId + ".tmp";
        WriteAndRename(Path.Combine(dir, envelope.Id + ".json"), suffix, f => f.Write(QueueJson.Serialize(envelope)));
        WriteAndRename(eml, suffix, f =>
        {
            body.Position = 0;
            body.CopyTo(f);
        });
        DurableFile.SyncDirectory(dir);
    }

    private static void WriteAndRename(string path, string suffix, Action<FileStream> write)
    {
        string tmp = path + suffix;
        try
        {
            using (var f = DurableFile.OpenPrivate(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 64 * 1024))
            {
                write(f);
                f.Flush(flushToDisk: true);
            }
            DurableFile.Rename(tmp, path);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}

/// <summary>Delivers every recipient of a capturing server into its capture store: one copy per message.</summary>
internal sealed class CaptureCourier(QueueStore store) : ICourier
{
    public Task<CourierResult> DeliverAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            CaptureStore.Save(store.QueuePath, envelope, body);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Task.FromResult(CourierResult.Of(recipients.Select(r => RecipientResult.Local(r.Address, "4.3.0", "cannot keep the captured message: " + ex.Message, "capture")).ToList()));
        }
        double ms = Math.Round(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds, 1);
        return Task.FromResult(CourierResult.Of(recipients.Select(r => RecipientResult.FromReply(r.Address, 250, "2.0.0 captured", "capture", null, null, ms)).ToList()));
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
