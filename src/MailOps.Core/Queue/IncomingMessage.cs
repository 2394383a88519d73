using MimeKit;

namespace MailOps.Core.Queue;

/// <summary>
/// A message being written into the queue (states S2-S3 of docs/queue.md). Write the body,
/// exactly as it should be delivered (CRLF line ends, not dot-stuffed), into <see cref="Body"/>,
/// then <see cref="CommitAsync"/>. Disposing without committing removes every trace of it.
/// </summary>
public sealed class IncomingMessage : IAsyncDisposable
{
    private const int HeaderCaptureLimit = 64 * 1024;

    private readonly QueueStore _store;
    private readonly FileStream _file;
    private readonly CapturingStream _body;
    /// <summary>Octets inserted after the body was written (missing header fields, signatures).</summary>
    private long _prefix;
    private bool _signed;
    /// <summary>The whole content once something was inserted into a message small enough to be kept in memory; else null.</summary>
    private byte[]? _content;
    private bool _committed;
    private bool _disposed;

    /// <summary>The body is written into a spare file: its old length stays until <see cref="SetFileLength"/>.</summary>
    private readonly bool _reused;

    internal IncomingMessage(QueueStore store, string id, FileStream file, bool reused = false)
    {
        _store = store;
        Id = id;
        _file = file;
        _reused = reused;
        _body = new CapturingStream(file, HeaderCaptureLimit);
    }

    /// <summary>The id the message will have once committed.</summary>
    public string Id { get; }

    /// <summary>Where the body goes. Write-only; streamed straight to the spool file.</summary>
    public Stream Body => _body;

    /// <summary>The start of what was written, up to the end of the header block (64 KiB at most).</summary>
    internal ReadOnlySpan<byte> HeaderBlock => _body.Captured;

    /// <summary>The fields of <see cref="HeaderBlock"/>, parsed once when the body is complete; null when they do not parse.</summary>
    internal HeaderList? HeaderFields
    {
        get
        {
            if (_headerParsed) return _headerFields;
            _headerParsed = true;
            try { _headerFields = HeaderList.Load(new MemoryStream(_body.Captured.ToArray(), writable: false)); }
            catch (FormatException) { _headerFields = null; }
            return _headerFields;
        }
    }

    private HeaderList? _headerFields;
    private bool _headerParsed;

    /// <summary>Octets written so far.</summary>
    public long Length => _body.Written + _prefix;

    /// <summary>
    /// Makes the message durable and visible (the commit point of docs/queue.md). When this
    /// returns, the message survives a crash; only then may the caller acknowledge it.
    /// The envelope's id, size and, unless already set, Message-ID and Subject are filled in.
    /// </summary>
    /// <exception cref="QueueFailureException">Nothing was committed; always transient here.</exception>
    public async Task<string> CommitAsync(Envelope envelope, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed) throw new InvalidOperationException("Already committed.");
        if (envelope.Recipients.Count == 0) throw new ArgumentException("An envelope needs at least one recipient.", nameof(envelope));
        cancellationToken.ThrowIfCancellationRequested();

        envelope.Id = Id;
        if (envelope.Arrived == default) envelope.Arrived = _store.Clock.GetUtcNow();
        envelope.Size = _body.Written + _prefix;
        FillFromHeaders(envelope);

        FileStream? envFile = null;
        string tmpPath = _store.Layout.Tmp(Id);
        byte[] json = QueueJson.Serialize(envelope);
        FileFacts? written = null;
        try
        {
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            SetFileLength();
            envFile = _store.CreateFile(tmpPath, FileShare.None, 1, out bool reused);
            envFile.Write(json);
            if (reused) envFile.SetLength(json.Length);
            envFile.Flush();
            // The summary index names the file this envelope is in by its inode (and time).
            if (OperatingSystem.IsLinux()) written = Posix.FStat(envFile.SafeFileHandle);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            envFile?.Dispose();
            TryDelete(tmpPath);
            throw QueueFailureException.Transient($"Cannot write to the queue: {ex.Message}", ex);
        }

        var request = new GroupCommitter.Request
        {
            Body = _file,
            Envelope = envFile,
            EnvelopeTmpPath = tmpPath,
            EnvelopePath = _store.Layout.Env(Id),
        };
        try
        {
            // Not cancellable from here on: once handed over, the commit either happens or fails whole.
            await _store.Committer.CommitAsync(request).ConfigureAwait(false);
        }
        finally
        {
            envFile.Dispose();
            if (request.Done.Task.Status != TaskStatus.RanToCompletion) TryDelete(tmpPath);
        }

        _committed = true;
        // Closed before the trigger is pulled: the delivery that the pull starts must be able to
        // open (and lock) the body at once.
        await CloseQuietlyAsync().ConfigureAwait(false);
        _store.OnCommitted(envelope, written, json);
        return Id;
    }

    /// <summary>
    /// Signs the message with every DKIM key of its From: domain (docs/delivery.md, "DKIM
    /// signing"): relaxed/relaxed over the bytes as written, From oversigned, List-Unsubscribe and
    /// List-Unsubscribe-Post included when present. The DKIM-Signature fields are put before the
    /// message (in the same file), which is otherwise left byte for byte. Call once the body is complete, before
    /// <see cref="CommitAsync"/>; only for mail from a trusted source (local, AUTH, RelayClients).
    /// </summary>
    /// <returns>
    /// The selectors that signed, as <c>selector._domainkey.domain</c> (empty when the domain has no
    /// key), or why it could not be signed: a broken key leaves the message unsigned, never refused.
    /// </returns>
    /// <exception cref="QueueFailureException">Writing the signed copy failed (a full disk): the message cannot be queued now.</exception>
    public async Task<(IReadOnlyList<string> Signatures, string? Error)> SignDkimAsync(Dkim.DkimKeys keys, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed || _signed) throw new InvalidOperationException("Sign once, before the commit.");
        string? domain = null;
        if (HeaderFields?[HeaderId.From] is { } from && InternetAddressList.TryParse(from, out var list) && list.Mailboxes.FirstOrDefault() is { } mailbox)
            domain = mailbox.Domain?.ToLowerInvariant();
        if (domain is null) return ([], null);
        IReadOnlyList<MimeKit.Cryptography.DkimSigner> signers;
        try
        {
            signers = keys.SignersFor(domain);
        }
        catch (Exception ex) when (ex is not IOException and not OperationCanceledException)
        {
            return ([], $"the DKIM keys of {domain} cannot be used: {ex.Message}");
        }
        if (signers.Count == 0) return ([], null);

        var message = await ParseAsync(cancellationToken).ConfigureAwait(false);
        var present = new[] { "From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
                              "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post" }
            .Where(name => message.Headers.Contains(name) || message.Body?.Headers.Contains(name) == true).Prepend("From").ToList(); // From twice: oversigned, so no second From: can be added
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        var text = new System.Text.StringBuilder();
        foreach (var signer in signers)
        {
            try
            {
                signer.Sign(options, message, present);
            }
            catch (Exception ex) when (ex is not IOException and not OperationCanceledException)
            {
                return ([], $"cannot sign with {signer.Selector}._domainkey.{signer.Domain}: {ex.Message}");
            }
            var field = message.Headers[message.Headers.IndexOf(HeaderId.DkimSignature)];
            // MimeKit folds the value with bare LF; stored mail has CRLF line ends only.
            string value = System.Text.Encoding.ASCII.GetString(field.RawValue).TrimEnd('\r', '\n').Replace("\r\n", "\n").Replace("\n", "\r\n");
            text.Insert(0, field.Field + ":" + value + "\r\n"); // the last signature made is on top, as in the message
        }
        byte[] prefix = System.Text.Encoding.ASCII.GetBytes(text.ToString());

        await InsertAsync(0, prefix, cancellationToken).ConfigureAwait(false);
        _signed = true;
        return (signers.Select(s => $"{s.Selector}._domainkey.{s.Domain}").ToList(), null);
    }

    /// <summary>The message as it stands, parsed by MimeKit (from memory when it is small, else from its file).</summary>
    public async Task<MimeMessage> ParseAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var content = Content;
        if (content.IsEmpty)
        {
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            SetFileLength();
        }
        await using var stream = content.IsEmpty ? DurableFile.OpenCommittedForReading(_store.Layout.Mess(Id), 64 * 1024)
            : (Stream)(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(content, out var kept) ? new MemoryStream(kept.Array!, kept.Offset, kept.Count, writable: false)
            : new MemoryStream(content.ToArray(), writable: false));
        return await MimeMessage.LoadAsync(stream, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Puts header fields (each ending in CRLF) at the very top of the message, before the trace fields (Authentication-Results).</summary>
    /// <exception cref="QueueFailureException">Writing failed (a full disk).</exception>
    public Task PrependHeaderFieldsAsync(string fields, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed || _signed) throw new InvalidOperationException("Add header fields before signing and committing.");
        return InsertAsync(0, System.Text.Encoding.UTF8.GetBytes(fields), cancellationToken);
    }

    /// <summary>Writes <paramref name="data"/> over as many octets at <paramref name="offset"/> of the header block as written (nothing moves).</summary>
    /// <exception cref="QueueFailureException">Writing failed.</exception>
    public async Task OverwriteHeaderAsync(int offset, byte[] data, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed || _prefix != 0 || offset < 0 || offset + data.Length > _body.Captured.Length) throw new InvalidOperationException("Overwrite within the header block, before anything is inserted.");
        long end = _body.Written;
        try
        {
            _file.Position = offset;
            await _file.WriteAsync(data, cancellationToken).ConfigureAwait(false);
            _file.Position = end;
        }
        catch (IOException io)
        {
            throw QueueFailureException.Transient($"Cannot write to the queue: {io.Message}", io);
        }
        _body.Patch(offset, data);
        _headerParsed = false; // the fields changed
    }

    /// <summary>The whole message as it stands when it is small enough to be kept in memory; else empty.</summary>
    private ReadOnlyMemory<byte> Content => _content is not null ? _content : _prefix == 0 ? _body.Whole : ReadOnlyMemory<byte>.Empty;

    /// <summary>
    /// Adds header fields (each ending in CRLF) at the end of the header block, as Postfix's
    /// cleanup adds a missing Message-ID or Date: call before signing. False when the header block
    /// has no end within its first 64 KiB (nothing is added then).
    /// </summary>
    /// <exception cref="QueueFailureException">Writing failed (a full disk).</exception>
    public async Task<bool> AddHeaderFieldsAsync(string fields, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed || _signed) throw new InvalidOperationException("Add header fields before signing and committing.");
        var header = _body.Captured;
        if (header.Length < 4 || !header.EndsWith("\r\n\r\n"u8)) return false;
        await InsertAsync(_prefix + header.Length - 2, System.Text.Encoding.UTF8.GetBytes(fields), cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Puts <paramref name="data"/> at <paramref name="offset"/> of the message, in the same file:
    /// a small message is written again from memory; a large one has its content from the offset
    /// moved up, from the end backwards. No second file: on ext4 a new inode per message is what
    /// costs most (inode allocation).
    /// </summary>
    private async Task InsertAsync(long offset, byte[] data, CancellationToken cancellationToken)
    {
        var content = Content;
        long length = _body.Written + _prefix;
        try
        {
            if (!content.IsEmpty)
            {
                var updated = new byte[content.Length + data.Length];
                content.Span[..(int)offset].CopyTo(updated);
                data.CopyTo(updated, (int)offset);
                content.Span[(int)offset..].CopyTo(updated.AsSpan((int)offset + data.Length));
                _file.Position = offset;
                await _file.WriteAsync(updated.AsMemory((int)offset), cancellationToken).ConfigureAwait(false);
                _content = updated;
            }
            else
            {
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                await using var reader = DurableFile.OpenCommittedForReading(_store.Layout.Mess(Id), 1);
                var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
                try
                {
                    for (long end = length; end > offset;)
                    {
                        int n = (int)Math.Min(buffer.Length, end - offset);
                        long start = end - n;
                        reader.Position = start;
                        await reader.ReadExactlyAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                        _file.Position = start + data.Length;
                        await _file.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                        end = start; // what is still to move lies below every write so far
                    }
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                }
                _file.Position = offset;
                await _file.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            _file.Position = length + data.Length;
        }
        catch (IOException io)
        {
            throw QueueFailureException.Transient($"Cannot write to the queue: {io.Message}", io);
        }
        _prefix += data.Length;
    }

    /// <summary>A spare file ends where this message ends (it may have held a longer one).</summary>
    private void SetFileLength()
    {
        if (_reused && _file.Length != Length) _file.SetLength(Length);
    }

    /// <summary>The envelope's summary from the header; a message with a broken header block still gets queued, without one.</summary>
    private void FillFromHeaders(Envelope envelope)
    {
        if (envelope.MessageId is not null && envelope.Subject is not null || HeaderFields is not { } headers) return;
        envelope.MessageId ??= headers[HeaderId.MessageId]?.Trim();
        envelope.Subject ??= headers[HeaderId.Subject]?.Trim();
    }

    /// <summary>Abandons an uncommitted message: nothing of it stays in the queue. Never throws.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await CloseQuietlyAsync().ConfigureAwait(false);
        if (!_committed) TryDelete(_store.Layout.Mess(Id));
    }

    private bool _closed;

    /// <summary>
    /// Closes the body file. Closing flushes what is still buffered; when that fails (a full disk)
    /// the handle is closed all the same, and the failure does not matter: the message is either
    /// committed already (its bytes were fsynced) or being abandoned.
    /// </summary>
    private async ValueTask CloseQuietlyAsync()
    {
        if (_closed) return;
        _closed = true;
        try { await _file.DisposeAsync().ConfigureAwait(false); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            _file.SafeFileHandle.Dispose();
        }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Write-through stream that counts octets and keeps a copy of what was written: all of a small
    /// message (up to <see cref="WholeLimit"/>, so that signing needs no second read of the file),
    /// else the header block up to a limit.
    /// </summary>
    private sealed class CapturingStream : Stream
    {
        private const int WholeLimit = 256 * 1024;
        private readonly Stream _inner;
        private readonly int _headerLimit;
        private byte[] _captured = new byte[8 * 1024];
        private int _capturedLength;
        private int _headerLength = -1;

        public CapturingStream(Stream inner, int headerLimit)
        {
            _inner = inner;
            _headerLimit = headerLimit;
        }

        public long Written { get; private set; }

        /// <summary>The header block, its blank line included (or as much of it as the limit keeps).</summary>
        public ReadOnlySpan<byte> Captured => _captured.AsSpan(0, _headerLength >= 0 ? _headerLength : Math.Min(_capturedLength, _headerLimit));

        /// <summary>Changes captured octets in place (what <see cref="OverwriteHeaderAsync"/> wrote to the file).</summary>
        public void Patch(int offset, byte[] data) => data.CopyTo(_captured, offset);

        /// <summary>Everything written, when the message is small enough to be kept whole; else empty.</summary>
        public ReadOnlyMemory<byte> Whole => Written == _capturedLength ? _captured.AsMemory(0, _capturedLength) : ReadOnlyMemory<byte>.Empty;

        private void Capture(ReadOnlySpan<byte> data)
        {
            bool whole = Written == _capturedLength;
            Written = checked(Written + data.Length);
            int take = whole && Written <= WholeLimit ? data.Length
                : _headerLength >= 0 ? 0
                : Math.Clamp(_headerLimit - _capturedLength, 0, data.Length);
            if (take == 0) return;
            if (_capturedLength + take > _captured.Length)
                Array.Resize(ref _captured, Math.Max(_capturedLength + take, Math.Min(_captured.Length * 2, WholeLimit)));
            data[..take].CopyTo(_captured.AsSpan(_capturedLength));
            int searchFrom = Math.Max(0, _capturedLength - 3);
            _capturedLength += take;
            if (_headerLength >= 0) return;
            int end = _captured.AsSpan(searchFrom, _capturedLength - searchFrom).IndexOf("\r\n\r\n"u8);
            if (end >= 0) _headerLength = Math.Min(searchFrom + end + 4, _headerLimit);
            else if (_capturedLength >= _headerLimit) _headerLength = _headerLimit;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer) { Capture(buffer); _inner.Write(buffer); }
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            Capture(buffer.Span);
            return _inner.WriteAsync(buffer, ct);
        }
        public override void Flush() => _inner.Flush();
        public override Task FlushAsync(CancellationToken ct) => _inner.FlushAsync(ct);
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
