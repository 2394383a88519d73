using System.Runtime.Versioning;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Submission;

/// <summary>What became of one drop.</summary>
public enum PickupOutcome
{
    /// <summary>Queued, and the drop removed.</summary>
    Queued,
    /// <summary>Refused: moved to maildrop-rejected/ with a .reason file beside it.</summary>
    Rejected,
    /// <summary>The queue could not take it now (a full disk); the drop stays for the next scan.</summary>
    Deferred,
    /// <summary>It was gone when its turn came.</summary>
    Gone,
}

/// <summary>
/// The trusted half of local submission (Postfix's pickup; docs/queue.md, "The maildrop"): takes
/// each file the drop helper left in <c>&lt;queue&gt;/maildrop</c>, checks it as untrusted input
/// (a regular file with one link, a complete drop, a size under MaxMessageSize, a valid sendmail
/// command line, then everything <see cref="MessageSubmitter"/> checks of the message itself),
/// names the submitting user from the file's owner, commits the message with the normal protocol
/// and removes the drop. A drop it refuses is moved to <c>maildrop-rejected/</c> with the reason
/// beside it and logged: never lost. Woken by the queue trigger; it also looks every minute and
/// at start-up, so drops made while no server ran are taken.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class MaildropPickup(MailOpsConfig config, QueueStore store, ILogger log)
{
    private const int MaxHeader = 64 * 1024, MaxArgs = 4096, Concurrency = 8;
    private static readonly TimeSpan AbandonedAfter = TimeSpan.FromDays(1);

    public string Directory { get; } = Path.Combine(store.QueuePath, DropFile.DirectoryName);
    public string RejectedDirectory { get; } = Path.Combine(store.QueuePath, "maildrop-rejected");
    /// <summary>How often the maildrop is scanned without a pull of the trigger.</summary>
    public TimeSpan RescanInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>The largest drop this server takes: MaxMessageSize and room for the drop's header and trailer.</summary>
    public long MaxDropSize => config.MaxMessageSize + MaxHeader + DropFile.TrailerLength;

    /// <summary>
    /// Tells the drop helpers the largest drop this server takes (<c>&lt;queue&gt;/maildrop.limits</c>),
    /// so a user cannot fill the spool's disk with a drop the pickup would refuse anyway. Readable
    /// by all (0644): only the queue's owner and the drop group can reach it.
    /// </summary>
    public void PublishLimits()
    {
        string path = Path.Combine(store.QueuePath, DropFile.LimitsName);
        File.WriteAllText(path, $"# Written by the server at start-up: the largest drop it takes.\nmax-size={MaxDropSize}\n");
        File.SetUnixFileMode(path, (UnixFileMode)0x1a4);
    }

    /// <summary>Picks up until <paramref name="cancellationToken"/> is cancelled.</summary>
    public async Task RunAsync(QueueTriggerListener trigger, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await PickUpAllAsync(cancellationToken).ConfigureAwait(false);
                await trigger.WaitForDropAsync(RescanInterval, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { return; }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                log.LogError("maildrop: cannot scan {Directory}: {Error}", Directory, ex.Message);
                try { await Task.Delay(RescanInterval, cancellationToken).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>Takes every drop there now, oldest first, a few at a time (their commits share fsyncs).</summary>
    /// <returns>How many were queued.</returns>
    public async Task<int> PickUpAllAsync(CancellationToken cancellationToken = default)
    {
        if (!System.IO.Directory.Exists(Directory)) return 0;
        var names = System.IO.Directory.EnumerateFileSystemEntries(Directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        int queued = 0;
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = cancellationToken }, async (name, ct) =>
        {
            try
            {
                if (await PickUpAsync(name!, ct).ConfigureAwait(false) == PickupOutcome.Queued) Interlocked.Increment(ref queued);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // One drop that cannot be handled now (nor moved aside) holds up none of the others.
                log.LogError("maildrop: cannot take {Name} now: {Error}", name, ex.Message);
            }
        }).ConfigureAwait(false);
        return queued;
    }

    /// <summary>Takes one entry of the maildrop.</summary>
    public async Task<PickupOutcome> PickUpAsync(string name, CancellationToken cancellationToken = default)
    {
        string path = Path.Combine(Directory, name);
        if (Posix.LStat(path) is not { } facts) return PickupOutcome.Gone;
        if (name.StartsWith('.'))
        {
            // Being written by a helper, or left by one that was killed: removed once clearly abandoned.
            if (facts.IsRegular && DateTime.UtcNow - File.GetLastWriteTimeUtc(path) > AbandonedAfter)
            {
                File.Delete(path);
                log.LogWarning("maildrop: removed {Name}, an unfinished drop abandoned by uid {Uid}", name, facts.Owner);
            }
            return facts.IsRegular ? PickupOutcome.Gone : Reject(path, facts, "not a regular file");
        }
        if (!DropFile.IsDropName(name)) return Reject(path, facts, "not a name the drop helper gives");
        if (facts.IsSymbolicLink) return Reject(path, facts, "a symbolic link, not a drop");
        if (!facts.IsRegular) return Reject(path, facts, "not a regular file");
        if (facts.Links != 1) return Reject(path, facts, $"a file with {facts.Links} hard links, not a drop");
        if (facts.Size > MaxDropSize) return Reject(path, facts, $"{facts.Size} octets, over MaxMessageSize ({config.MaxMessageSize})");

        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1);
        }
        catch (FileNotFoundException) { return PickupOutcome.Gone; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not made by the helper (it leaves drops readable to the server): aside, so it blocks nothing.
            return Reject(path, facts, "cannot be read: " + ex.Message);
        }
        string user;
        string? error;
        SubmissionRequest request;
        long bodyLength;
        int headerLength;
        await using (file)
        {
            if (Posix.FStat(file.SafeFileHandle) is not { } opened || opened.Inode != facts.Inode || !opened.IsRegular)
                return PickupOutcome.Gone; // replaced between lstat and open: the next scan sees what is there now
            user = UserOf(facts);
            (request, headerLength, bodyLength, error) = await ReadEnvelopeAsync(file, opened.Size, user, cancellationToken).ConfigureAwait(false);
            if (error is null)
            {
                file.Position = headerLength;
                try
                {
                    string id = await MessageSubmitter.SubmitAsync(store, new BoundedReadStream(file, bodyLength), request, cancellationToken).ConfigureAwait(false);
                    log.LogInformation("maildrop: {Name} from uid {Uid} ({User}) queued as {Id}", name, facts.Owner, user, id);
                }
                catch (SubmissionException ex) when (ex.Kind == SubmissionErrorKind.Temporary)
                {
                    log.LogWarning("maildrop: cannot queue {Name} from uid {Uid} ({User}) now, will retry: {Error}", name, facts.Owner, user, ex.Message);
                    return PickupOutcome.Deferred;
                }
                catch (SubmissionException ex)
                {
                    error = ex.Message;
                }
            }
        }
        if (error is not null) return Reject(path, facts, error, user);
        try { File.Delete(path); }
        catch (IOException ex) { log.LogError("maildrop: queued {Name} but cannot remove it: {Error}", name, ex.Message); }
        return PickupOutcome.Queued;
    }

    private async Task<(SubmissionRequest Request, int HeaderLength, long BodyLength, string? Error)> ReadEnvelopeAsync(FileStream file, long size, string user, CancellationToken cancellationToken)
    {
        var start = new byte[(int)Math.Min(size, MaxHeader)];
        await file.ReadExactlyAsync(start, cancellationToken).ConfigureAwait(false);
        var header = DropFile.ReadHeader(start, MaxArgs, out string? error);
        if (header is not { } h) return (null!, 0, 0, error);
        if (h.Mode != DropFile.SendmailMode) return (null!, 0, 0, $"unknown drop mode '{h.Mode}'");

        var end = new byte[DropFile.TrailerLength];
        long? declared = null;
        if (size >= h.Length + end.Length)
        {
            file.Position = size - end.Length;
            await file.ReadExactlyAsync(end, cancellationToken).ConfigureAwait(false);
            declared = DropFile.ReadTrailer(end);
        }
        if (declared is not { } bodyLength || h.Length + bodyLength + end.Length != size)
            return (null!, 0, 0, "truncated: the drop does not end with a trailer that matches its length");

        SendmailArgs args;
        try
        {
            args = SendmailArgs.Parse(h.Args);
        }
        catch (SendmailUsageException ex)
        {
            return (null!, 0, 0, "bad sendmail command line: " + ex.Message);
        }
        if (args.ListQueue) return (null!, 0, 0, "a queue listing (-bp), not a message");
        return (SubmissionRequest.FromSendmail(args, config, user), h.Length, bodyLength, null);
    }

    private PickupOutcome Reject(string path, FileFacts facts, string reason, string? user = null)
    {
        string name = Path.GetFileName(path);
        user ??= UserOf(facts);
        DurableFile.CreatePrivateDirectory(RejectedDirectory);
        string target = Path.Combine(RejectedDirectory, name);
        try
        {
            File.Move(path, target, overwrite: true); // rename(2): a symbolic link moves as itself
            File.WriteAllText(target + ".reason", $"uid {facts.Owner} ({user}): {reason}\n");
        }
        catch (FileNotFoundException)
        {
            return PickupOutcome.Gone;
        }
        log.LogWarning("maildrop: refused {Name} from uid {Uid} ({User}): {Reason}; kept in {Directory}", name, facts.Owner, user, reason, RejectedDirectory);
        return PickupOutcome.Rejected;
    }

    /// <summary>The login name of a file's owner, or its uid when the user database has none.</summary>
    private static string UserOf(FileFacts facts) => Posix.UserName(facts.Owner) ?? facts.Owner.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The body part of a drop: reads stop where the trailer begins.</summary>
    private sealed class BoundedReadStream(Stream inner, long length) : Stream
    {
        private long _left = length;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_left <= 0) return 0;
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
            _left -= n;
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_left <= 0) return 0;
            int n = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _left)], cancellationToken).ConfigureAwait(false);
            _left -= n;
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
