using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Text;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Smtp;

/// <summary>Ends the session early, after writing <see cref="Reply"/> when there is one.</summary>
internal sealed class SmtpSessionEnd(string? reply) : Exception(reply)
{
    public string? Reply { get; } = reply;
}

/// <summary>One line read by <see cref="SmtpConnection.ReadLineAsync"/>: its text, or the reply owed for a bad line, or the end of input.</summary>
internal readonly record struct SmtpLine(string? Text, string? Error, bool EndOfInput);

/// <summary>
/// The transport under an SMTP session: the socket's stream (and the TLS stream over it after
/// STARTTLS or on an implicit-TLS port), pipes for reading and writing, every timeout (IdleTimeout
/// per read, SessionTimeout overall, a flush to a client that does not read), and the stop request
/// of a server shutting down. Replies are buffered and flushed whenever the session is about to
/// wait for input, which is what RFC 2920 pipelining needs.
/// </summary>
internal sealed class SmtpConnection
{
    /// <summary>Replies buffered for a pipelining client before they are sent even though more input is waiting.</summary>
    private const int MaxUnflushedReplies = 16 * 1024;
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private readonly SmtpServerContext _server;
    private readonly Stream _transport;
    private readonly long _sessionDeadline;
    private CancellationTokenSource _timeout = new();
    private Stream _stream;
    private PipeWriter _writer;
    private int _waitingForCommand;
    private int _stopRequested;

    public SmtpConnection(SmtpServerContext server, Stream transport, IPAddress? clientAddress)
    {
        _server = server;
        _transport = _stream = transport;
        ClientAddress = clientAddress is { IsIPv4MappedToIPv6: true } ? clientAddress.MapToIPv4() : clientAddress;
        _sessionDeadline = Environment.TickCount64 + (long)server.Config.SessionTimeout.TotalMilliseconds;
        (Reader, _writer) = CreatePipes(transport);
    }

    public IPAddress? ClientAddress { get; }
    /// <summary>Where message bodies are read from (the session advances it itself).</summary>
    public PipeReader Reader { get; private set; }
    /// <summary>The TLS layer once STARTTLS (or an implicit-TLS port) succeeded.</summary>
    public SslStream? Tls { get; private set; }
    /// <summary>5xx replies sent so far (too many end the session).</summary>
    public int Errors { get; private set; }

    private string Host => _server.Config.HostName;

    private static (PipeReader, PipeWriter) CreatePipes(Stream stream) =>
        (PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true)),
         PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true)));

    public static bool IsConnectionError(Exception ex) =>
        ex is IOException or System.Net.Sockets.SocketException or ObjectDisposedException
            or System.Security.Authentication.AuthenticationException or OperationCanceledException;

    /// <summary>When the client's next input is due: IdleTimeout from now.</summary>
    public long IdleDeadline() => Environment.TickCount64 + (long)_server.Config.IdleTimeout.TotalMilliseconds;

    /// <summary>A server shutting down: a session waiting for its next command stops now; one receiving a message finishes it first.</summary>
    public void RequestStop()
    {
        Interlocked.Exchange(ref _stopRequested, 1);
        if (Interlocked.CompareExchange(ref _waitingForCommand, 0, 0) == 1)
        {
            try { _timeout.Cancel(); } catch (ObjectDisposedException) { }
        }
    }

    /// <summary>The command being answered ("CONNECT" before the first), for the metrics of refusals.</summary>
    public string Stage { get; set; } = "CONNECT";

    public void Reply(string line)
    {
        if (line[0] == '5') Errors++;
        if (line[0] is '4' or '5') _server.Metrics?.Rejected(Stage, line);
        var span = _writer.GetSpan(Encoding.UTF8.GetMaxByteCount(line.Length) + 2);
        int n = Encoding.UTF8.GetBytes(line, span);
        span[n] = (byte)'\r';
        span[n + 1] = (byte)'\n';
        _writer.Advance(n + 2);
    }

    public async ValueTask FlushAsync()
    {
        if (_writer.UnflushedBytes == 0) return;
        ArmTimeout(IdleDeadline());
        try
        {
            await _writer.FlushAsync(_timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new SmtpSessionEnd(null); // the client does not read its replies
        }
        finally
        {
            DisarmTimeout();
        }
    }

    /// <summary>A last reply (421, a timeout) sent with a short deadline of its own; never throws.</summary>
    public async Task TryFinalReplyAsync(string? reply)
    {
        if (reply is null) return;
        try
        {
            Reply(reply);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _writer.FlushAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException)
        {
        }
    }

    private void ArmTimeout(long deadline)
    {
        long remaining = Math.Min(deadline, _sessionDeadline) - Environment.TickCount64;
        if (remaining <= 0) throw new SmtpSessionEnd(SmtpReplies.Timeout(Host));
        if (_timeout.IsCancellationRequested)
        {
            // A stop request that landed just as a command arrived: the command (say, DATA) runs
            // to its end with a fresh timer; the next wait for a command sees the stop.
            _timeout.Dispose();
            _timeout = new CancellationTokenSource();
        }
        _timeout.CancelAfter(TimeSpan.FromMilliseconds(remaining));
    }

    private void DisarmTimeout()
    {
        try { _timeout.CancelAfter(Timeout.Infinite); } catch (ObjectDisposedException) { }
    }

    /// <summary>Runs <paramref name="work"/> (a password check) under IdleTimeout.</summary>
    public async Task<T> WithinIdleTimeoutAsync<T>(Func<CancellationToken, Task<T>> work)
    {
        ArmTimeout(IdleDeadline());
        try { return await work(_timeout.Token).ConfigureAwait(false); }
        finally { DisarmTimeout(); }
    }

    /// <summary>Next input; flushes the pending replies first when it has to wait.</summary>
    public async ValueTask<ReadResult> ReadAsync(long deadline, bool betweenCommands)
    {
        if (Reader.TryRead(out var ready))
        {
            // Input that is always there must not let a session outlive its limits: a client
            // that pipelines without end and never reads its replies would otherwise keep the
            // session, and an ever-growing reply buffer, for ever.
            if (Environment.TickCount64 >= _sessionDeadline) throw new SmtpSessionEnd(SmtpReplies.Timeout(Host));
            if (_writer.UnflushedBytes > MaxUnflushedReplies) await FlushAsync().ConfigureAwait(false);
            return ready;
        }
        await FlushAsync().ConfigureAwait(false);
        ArmTimeout(deadline);
        if (betweenCommands)
        {
            Interlocked.Exchange(ref _waitingForCommand, 1);
            if (Interlocked.CompareExchange(ref _stopRequested, 0, 0) == 1) throw new SmtpSessionEnd(SmtpReplies.ShuttingDown(Host));
        }
        try
        {
            return await Reader.ReadAsync(_timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            if (betweenCommands && _stopRequested == 1) throw new SmtpSessionEnd(SmtpReplies.ShuttingDown(Host));
            throw new SmtpSessionEnd(SmtpReplies.Timeout(Host));
        }
        finally
        {
            Interlocked.Exchange(ref _waitingForCommand, 0);
            DisarmTimeout();
        }
    }

    /// <summary>Skips <paramref name="octets"/> of input (a refused BDAT chunk).</summary>
    public async Task SkipAsync(long octets)
    {
        long deadline = IdleDeadline();
        while (octets > 0)
        {
            var result = await ReadAsync(deadline, betweenCommands: false).ConfigureAwait(false);
            var take = result.Buffer.Slice(0, Math.Min(octets, result.Buffer.Length));
            octets -= take.Length;
            Reader.AdvanceTo(take.End);
            if (octets > 0 && result.IsCompleted) throw new SmtpSessionEnd(null);
            deadline = IdleDeadline();
        }
    }

    /// <summary>
    /// Reads one CRLF-terminated line of at most <paramref name="maxLength"/> octets. The whole line
    /// must arrive within IdleTimeout, so a client that trickles a byte at a time is cut off.
    /// </summary>
    public async ValueTask<SmtpLine> ReadLineAsync(int maxLength)
    {
        long deadline = IdleDeadline();
        bool tooLong = false;
        while (true)
        {
            var result = await ReadAsync(deadline, betweenCommands: true).ConfigureAwait(false);
            var buffer = result.Buffer;
            var lf = buffer.PositionOf((byte)'\n');
            if (lf is null)
            {
                if (tooLong || buffer.Length >= maxLength)
                {
                    // Over the limit: drop what came and keep dropping up to the end of the line.
                    tooLong = true;
                    Reader.AdvanceTo(buffer.End);
                }
                else
                {
                    Reader.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted) return new SmtpLine(null, null, EndOfInput: true);
                continue;
            }
            var raw = buffer.Slice(0, lf.Value);
            bool over = tooLong || raw.Length + 1 > maxLength;
            byte[] bytes = over ? [] : raw.ToArray();
            Reader.AdvanceTo(buffer.GetPosition(1, lf.Value));
            if (over) return new SmtpLine(null, SmtpReplies.LineTooLong, false);
            // Exactly one CR, right before the LF (smuggling defence, as Postfix's smtpd_forbid_bare_newline).
            if (bytes.Length == 0 || bytes[^1] != (byte)'\r' || Array.IndexOf(bytes, (byte)'\r') != bytes.Length - 1)
            {
                _server.Logger.LogDebug(SmtpEvents.Protocol, "Bare CR or LF in a command from {Client}", ClientAddress);
                return new SmtpLine(null, SmtpReplies.BareNewlineInCommand, false);
            }
            try
            {
                return new SmtpLine(StrictUtf8.GetString(bytes, 0, bytes.Length - 1), null, false);
            }
            catch (DecoderFallbackException)
            {
                return new SmtpLine(null, SmtpReplies.InvalidUtf8, false);
            }
        }
    }

    /// <summary>
    /// Puts TLS under the session: after STARTTLS's 220, or at once on an implicit-TLS port. What
    /// the client sent in clear after STARTTLS is thrown away, never read as commands inside the
    /// TLS session (RFC 3207 5, CVE-2011-0411). A failed handshake ends the session.
    /// </summary>
    public async Task UpgradeToTlsAsync(SslServerAuthenticationOptions options)
    {
        if (Reader.TryRead(out var early))
        {
            if (!early.Buffer.IsEmpty) _server.Logger.LogInformation(SmtpEvents.Protocol, "Discarded {Octets} octets pipelined after STARTTLS by {Client}", early.Buffer.Length, ClientAddress);
            Reader.AdvanceTo(early.Buffer.End);
        }
        await Reader.CompleteAsync().ConfigureAwait(false);
        await _writer.CompleteAsync().ConfigureAwait(false);

        var tls = new SslStream(_transport, leaveInnerStreamOpen: false);
        _stream = tls;
        ArmTimeout(IdleDeadline());
        try
        {
            await tls.AuthenticateAsServerAsync(options, _timeout.Token).ConfigureAwait(false);
            _server.Metrics?.InboundTls(ok: true);
        }
        catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException or OperationCanceledException)
        {
            _server.Logger.LogInformation(SmtpEvents.TlsFailure, "TLS handshake with {Client} failed: {Reason}", ClientAddress, ex.Message);
            _server.Metrics?.InboundTls(ok: false);
            (Reader, _writer) = CreatePipes(tls);
            throw new SmtpSessionEnd(null);
        }
        finally
        {
            DisarmTimeout();
        }
        (Reader, _writer) = CreatePipes(tls);
        Tls = tls;
    }

    /// <summary>
    /// Closes the connection. Everything owed was flushed before, each flush under a deadline;
    /// what is left belongs to a client that does not read, so the stream is closed first and
    /// completing the writer (which flushes, with no deadline of its own) cannot wait for it.
    /// </summary>
    public async Task CloseAsync()
    {
        await CloseQuietlyAsync(_stream).ConfigureAwait(false);
        if (!ReferenceEquals(_stream, _transport)) await CloseQuietlyAsync(_transport).ConfigureAwait(false);
        try { await Reader.CompleteAsync().ConfigureAwait(false); } catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException) { }
        try { await _writer.CompleteAsync().ConfigureAwait(false); } catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException) { }
        _timeout.Dispose();
    }

    private static async ValueTask CloseQuietlyAsync(Stream stream)
    {
        try { await stream.DisposeAsync().ConfigureAwait(false); }
        catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException) { }
    }
}
