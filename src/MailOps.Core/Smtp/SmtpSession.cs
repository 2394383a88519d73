using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Text;
using MailOps.Core;
using MailOps.Core.Addressing;
using MailOps.Core.Queue;
using Microsoft.Extensions.Logging;
using MimeKit.Utils;

namespace MailOps.Core.Smtp;

/// <summary>
/// One SMTP session (RFC 5321) over a stream: reads commands, judges each, streams message bodies
/// into the queue and answers. Replies are buffered and flushed whenever the session is about to
/// wait for input, which is what RFC 2920 pipelining needs: a client may send MAIL, RCPT... and
/// DATA in one write and gets the replies in order, in one write.
/// </summary>
/// <remarks>
/// States: greeted -> (HELO/EHLO) -> ready -> (MAIL) -> in transaction -> (RCPT)+ -> (DATA | BDAT*)
/// -> ready. STARTTLS and AUTH are only allowed in "ready" (no transaction). A session ends on
/// QUIT, end of input, a timeout, a bare CR/LF inside DATA, too many errors, or server shutdown.
/// </remarks>
internal sealed class SmtpSession
{
    private const int MaxCommandLine = 512;   // RFC 5321 4.5.3.1.4, with CRLF
    private const int MaxAuthLine = 12288;    // RFC 4954 4
    private const int MaxErrors = 20;
    private const int MaxHops = 100;          // RFC 5321 6.3
    /// <summary>Replies buffered for a pipelining client before they are sent even though more input is waiting.</summary>
    private const int MaxUnflushedReplies = 16 * 1024;

    private readonly SmtpServerContext _server;
    private readonly Stream _transport;
    private readonly IPAddress? _clientAddress;
    private readonly CancellationToken _stopping;
    private CancellationTokenSource _timeout = new();
    private readonly long _sessionDeadline;
    private readonly string _host;
    private readonly bool _relayClient;

    private Stream _stream;
    private PipeReader _reader;
    private PipeWriter _writer;
    private int _waitingForCommand;
    private int _stopRequested;

    private string? _helo;
    private bool _esmtp;
    private SslStream? _tls;
    private string? _user;
    private int _errors;
    private bool _quit;
    private SmtpTransaction? _tx;

    public SmtpSession(SmtpServerContext server, Stream transport, IPAddress? clientAddress, CancellationToken stopping)
    {
        _server = server;
        _transport = _stream = transport;
        _clientAddress = clientAddress is { IsIPv4MappedToIPv6: true } ? clientAddress.MapToIPv4() : clientAddress;
        _stopping = stopping;
        _host = server.Config.HostName;
        _relayClient = server.Policy.IsRelayClient(_clientAddress);
        _sessionDeadline = Environment.TickCount64 + (long)server.Config.SessionTimeout.TotalMilliseconds;
        (_reader, _writer) = CreatePipes(transport);
    }

    private static (PipeReader, PipeWriter) CreatePipes(Stream stream) =>
        (PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true)),
         PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true)));

    /// <summary>Ends the session early, after writing <see cref="Reply"/> when there is one.</summary>
    private sealed class EndSession(string? reply) : Exception(reply)
    {
        public string? Reply { get; } = reply;
    }

    /// <summary>Runs the session to its end. Never throws: every failure ends the session quietly or with a 4xx.</summary>
    public async Task RunAsync()
    {
        using var registration = _stopping.Register(static s => ((SmtpSession)s!).OnStopRequested(), this);
        try
        {
            Reply(SmtpReplies.Greeting(_host));
            while (!_quit)
            {
                var line = await ReadLineAsync(MaxCommandLine).ConfigureAwait(false);
                if (line.EndOfInput) break;
                if (line.Error is not null) Reply(line.Error);
                else await HandleCommandAsync(line.Text!).ConfigureAwait(false);
                if (_errors >= MaxErrors) throw new EndSession(SmtpReplies.TooManyErrors(_host));
            }
            await FlushAsync().ConfigureAwait(false);
        }
        catch (EndSession end)
        {
            await TryFinalReplyAsync(end.Reply).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionError(ex))
        {
            // The client went away (reset, broken pipe, TLS failure): nothing to answer.
        }
        catch (Exception ex)
        {
            // A bug must not kill the listener; the client is told to come back later.
            _server.Logger.LogError(SmtpEvents.SessionError, ex, "Session with {Client} failed", _clientAddress);
            await TryFinalReplyAsync("421 4.3.0 " + _host + " Internal error, closing connection").ConfigureAwait(false);
        }
        finally
        {
            if (_tx is not null) await _tx.DisposeAsync().ConfigureAwait(false);
            // Everything owed was flushed above, each flush under a deadline. What is left belongs
            // to a client that does not read: close the connection first, so that completing the
            // writer (which flushes, with no deadline of its own) cannot wait for that client.
            await CloseQuietlyAsync(_stream).ConfigureAwait(false);
            if (!ReferenceEquals(_stream, _transport)) await CloseQuietlyAsync(_transport).ConfigureAwait(false);
            try { await _reader.CompleteAsync().ConfigureAwait(false); } catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException) { }
            try { await _writer.CompleteAsync().ConfigureAwait(false); } catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException) { }
            _timeout.Dispose();
        }
    }

    private static async ValueTask CloseQuietlyAsync(Stream stream)
    {
        try { await stream.DisposeAsync().ConfigureAwait(false); }
        catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException) { }
    }

    private static bool IsConnectionError(Exception ex) =>
        ex is IOException or System.Net.Sockets.SocketException or ObjectDisposedException
            or System.Security.Authentication.AuthenticationException or OperationCanceledException;

    /// <summary>When the client's next input is due: IdleTimeout from now.</summary>
    private long IdleDeadline() => Environment.TickCount64 + (long)_server.Config.IdleTimeout.TotalMilliseconds;

    /// <summary>An octet count as SIZE= and BDAT give it: 1 to 19 digits, fitting a long.</summary>
    private static bool TryParseOctets(string text, out long octets)
    {
        octets = 0;
        return text.Length is > 0 and <= 19 && text.All(char.IsAsciiDigit) && long.TryParse(text, out octets);
    }

    private async Task TryFinalReplyAsync(string? reply)
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

    private void OnStopRequested()
    {
        Interlocked.Exchange(ref _stopRequested, 1);
        // Only a session waiting for its next command is interrupted; one that is receiving a
        // message finishes it (its reply included) and stops at the next command boundary.
        if (Interlocked.CompareExchange(ref _waitingForCommand, 0, 0) == 1)
        {
            try { _timeout.Cancel(); } catch (ObjectDisposedException) { }
        }
    }

    // ------------------------------------------------------------------ reading and writing

    private void Reply(string line)
    {
        if (line[0] == '5') _errors++;
        var span = _writer.GetSpan(Encoding.UTF8.GetMaxByteCount(line.Length) + 2);
        int n = Encoding.UTF8.GetBytes(line, span);
        span[n] = (byte)'\r';
        span[n + 1] = (byte)'\n';
        _writer.Advance(n + 2);
    }

    private async ValueTask FlushAsync()
    {
        if (_writer.UnflushedBytes == 0) return;
        ArmTimeout(IdleDeadline());
        try
        {
            await _writer.FlushAsync(_timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new EndSession(null); // the client does not read its replies
        }
        finally
        {
            DisarmTimeout();
        }
    }

    private void ArmTimeout(long deadline)
    {
        long remaining = Math.Min(deadline, _sessionDeadline) - Environment.TickCount64;
        if (remaining <= 0) throw new EndSession(SmtpReplies.Timeout(_host));
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

    /// <summary>Next input; flushes the pending replies first when it has to wait.</summary>
    private async ValueTask<ReadResult> ReadAsync(long deadline, bool betweenCommands)
    {
        if (_reader.TryRead(out var ready))
        {
            // Input that is always there must not let a session outlive its limits: a client
            // that pipelines without end and never reads its replies would otherwise keep the
            // session, and an ever-growing reply buffer, for ever.
            if (Environment.TickCount64 >= _sessionDeadline) throw new EndSession(SmtpReplies.Timeout(_host));
            if (_writer.UnflushedBytes > MaxUnflushedReplies) await FlushAsync().ConfigureAwait(false);
            return ready;
        }
        await FlushAsync().ConfigureAwait(false);
        ArmTimeout(deadline);
        if (betweenCommands)
        {
            Interlocked.Exchange(ref _waitingForCommand, 1);
            if (Interlocked.CompareExchange(ref _stopRequested, 0, 0) == 1) throw new EndSession(SmtpReplies.ShuttingDown(_host));
        }
        try
        {
            return await _reader.ReadAsync(_timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            if (betweenCommands && _stopRequested == 1) throw new EndSession(SmtpReplies.ShuttingDown(_host));
            throw new EndSession(SmtpReplies.Timeout(_host));
        }
        finally
        {
            Interlocked.Exchange(ref _waitingForCommand, 0);
            DisarmTimeout();
        }
    }

    private readonly record struct Line(string? Text, string? Error, bool EndOfInput);

    /// <summary>
    /// Reads one CRLF-terminated line of at most <paramref name="maxLength"/> octets. The whole line
    /// must arrive within IdleTimeout, so a client that trickles a byte at a time is cut off.
    /// </summary>
    private async ValueTask<Line> ReadLineAsync(int maxLength)
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
                    _reader.AdvanceTo(buffer.End);
                }
                else
                {
                    _reader.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted) return new Line(null, null, EndOfInput: true);
                continue;
            }
            var raw = buffer.Slice(0, lf.Value);
            bool over = tooLong || raw.Length + 1 > maxLength;
            byte[] bytes = over ? [] : raw.ToArray();
            _reader.AdvanceTo(buffer.GetPosition(1, lf.Value));
            if (over) return new Line(null, SmtpReplies.LineTooLong, false);
            // Exactly one CR, right before the LF (smuggling defence, as Postfix's smtpd_forbid_bare_newline).
            if (bytes.Length == 0 || bytes[^1] != (byte)'\r' || Array.IndexOf(bytes, (byte)'\r') != bytes.Length - 1)
            {
                _server.Logger.LogDebug(SmtpEvents.Protocol, "Bare CR or LF in a command from {Client}", _clientAddress);
                return new Line(null, SmtpReplies.BareNewlineInCommand, false);
            }
            try
            {
                return new Line(StrictUtf8.GetString(bytes, 0, bytes.Length - 1), null, false);
            }
            catch (DecoderFallbackException)
            {
                return new Line(null, SmtpReplies.InvalidUtf8, false);
            }
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    // ------------------------------------------------------------------ commands

    private async Task HandleCommandAsync(string line)
    {
        var (verb, argument) = SmtpCommandParser.SplitVerb(line);
        try
        {
            switch (verb)
            {
                case "EHLO": await HelloAsync(argument, esmtp: true).ConfigureAwait(false); break;
                case "HELO": await HelloAsync(argument, esmtp: false).ConfigureAwait(false); break;
                case "MAIL": Mail(argument); break;
                case "RCPT": Rcpt(argument); break;
                case "DATA": await DataAsync(argument).ConfigureAwait(false); break;
                case "BDAT": await BdatAsync(argument).ConfigureAwait(false); break;
                case "RSET": await ResetTransactionAsync().ConfigureAwait(false); Reply(SmtpReplies.Ok); break;
                case "NOOP": Reply(SmtpReplies.Ok); break;
                case "QUIT": Reply(SmtpReplies.Bye(_host)); _quit = true; break;
                case "VRFY": Reply(SmtpReplies.CannotVrfy); break;
                case "EXPN": Reply(SmtpReplies.NoExpn); break;
                case "HELP": Reply(SmtpReplies.Help); break;
                case "STARTTLS": await StartTlsAsync(argument).ConfigureAwait(false); break;
                case "AUTH": await AuthAsync(argument).ConfigureAwait(false); break;
                default: Reply(SmtpReplies.Unrecognized); break;
            }
        }
        catch (Exception ex) when (ex is not EndSession && !IsConnectionError(ex))
        {
            // An unexpected failure on the receive path is temporary for the client (house style 4).
            _server.Logger.LogError(SmtpEvents.SessionError, ex, "{Verb} from {Client} failed", verb, _clientAddress);
            await ResetTransactionAsync().ConfigureAwait(false);
            Reply(SmtpReplies.InternalError);
        }
    }

    private async ValueTask ResetTransactionAsync()
    {
        if (_tx is null) return;
        var tx = _tx;
        _tx = null;
        await tx.DisposeAsync().ConfigureAwait(false);
    }

    private async Task HelloAsync(string argument, bool esmtp)
    {
        string name = argument.Trim();
        if (name.Length == 0 || name.Contains(' '))
        {
            Reply(SmtpReplies.Syntax(esmtp ? "Syntax: EHLO hostname" : "Syntax: HELO hostname"));
            return;
        }
        // HELO/EHLO resets the transaction (RFC 5321 4.1.4).
        await ResetTransactionAsync().ConfigureAwait(false);
        _helo = name;
        _esmtp = esmtp;
        if (!esmtp)
        {
            Reply($"250 {_host}");
            return;
        }
        var lines = new List<string>
        {
            $"{_host} Hello {name} [{_clientAddress}]",
            "PIPELINING",
            $"SIZE {_server.Config.MaxMessageSize}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        };
        if (_tls is null && _server.Tls is not null) lines.Add("STARTTLS");
        if (_tls is not null && _server.AuthAvailable && _user is null) lines.Add("AUTH PLAIN LOGIN");
        lines.Add("CHUNKING");
        lines.Add("DSN");
        lines.Add("HELP");
        for (int i = 0; i < lines.Count; i++) Reply((i == lines.Count - 1 ? "250 " : "250-") + lines[i]);
    }

    private void Mail(string argument)
    {
        if (_helo is null) { Reply(SmtpReplies.HeloFirst); return; }
        if (_tx is not null) { Reply(SmtpReplies.NestedMail); return; }
        var path = SmtpCommandParser.ParsePath(argument, "FROM:", out string? error);
        if (path is null) { Reply(SmtpReplies.Syntax(error!)); return; }

        bool eightBit = false, smtpUtf8 = false;
        string? envelopeId = null;
        var ret = DsnReturn.Default;
        foreach (var (key, value) in path.Parameters)
        {
            switch (key)
            {
                case "SIZE":
                    if (value is null || !TryParseOctets(value, out long declared))
                    { Reply(SmtpReplies.Syntax("Syntax: SIZE=octets")); return; }
                    if (declared > _server.Config.MaxMessageSize) { Reply(SmtpReplies.MessageTooBig); return; }
                    break;
                case "BODY":
                    if (string.Equals(value, "8BITMIME", StringComparison.OrdinalIgnoreCase)) eightBit = true;
                    else if (!string.Equals(value, "7BIT", StringComparison.OrdinalIgnoreCase)) { Reply(SmtpReplies.UnsupportedParameter("BODY=" + value)); return; }
                    break;
                case "SMTPUTF8":
                    if (value is not null) { Reply(SmtpReplies.Syntax("SMTPUTF8 takes no value")); return; }
                    smtpUtf8 = true;
                    break;
                case "RET":
                    if (string.Equals(value, "FULL", StringComparison.OrdinalIgnoreCase)) ret = DsnReturn.Full;
                    else if (string.Equals(value, "HDRS", StringComparison.OrdinalIgnoreCase)) ret = DsnReturn.Headers;
                    else { Reply(SmtpReplies.Syntax("Syntax: RET=FULL or RET=HDRS")); return; }
                    break;
                case "ENVID":
                    if (value is null || value.Length > 100 || !SmtpCommandParser.TryDecodeXtext(value, out string id)) { Reply(SmtpReplies.Syntax("Bad ENVID")); return; }
                    envelopeId = id;
                    break;
                case "AUTH":
                    // RFC 4954 5: the server may ignore AUTH= from an untrusted client; it does.
                    break;
                default:
                    Reply(SmtpReplies.UnsupportedParameter(key));
                    return;
            }
        }

        string sender = "";
        if (path.Mailbox.Length > 0)
        {
            if (!EnvelopeAddress.TryParse(path.Mailbox, allowUtf8: true, out var address, out error))
            { Reply($"501 5.1.7 Bad sender address syntax: {error}"); return; }
            if (address!.IsInternational && !smtpUtf8) { Reply(SmtpReplies.NeedSmtpUtf8); return; }
            sender = address.ToString();
        }
        _tx = new SmtpTransaction { Sender = sender, EightBit = eightBit, SmtpUtf8 = smtpUtf8, EnvelopeId = envelopeId, Return = ret };
        Reply(SmtpReplies.SenderOk);
    }

    private void Rcpt(string argument)
    {
        if (_tx is null) { Reply(SmtpReplies.MailFirst); return; }
        if (_tx.Chunking) { Reply(SmtpReplies.NotInTransaction); return; }
        var path = SmtpCommandParser.ParsePath(argument, "TO:", out string? error);
        if (path is null) { Reply(SmtpReplies.Syntax(error!)); return; }

        var notify = DsnNotify.Default;
        string? original = null;
        foreach (var (key, value) in path.Parameters)
        {
            if (key == "NOTIFY" && value is not null && TryParseNotify(value, out notify)) continue;
            if (key == "ORCPT" && value is not null && value.Length <= 500 && value.Contains(';') && SmtpCommandParser.TryDecodeXtext(value, out string decoded))
            {
                original = decoded;
                continue;
            }
            if (key is "NOTIFY" or "ORCPT") { Reply(SmtpReplies.Syntax($"Bad {key} parameter")); return; }
            Reply(SmtpReplies.UnsupportedParameter(key));
            return;
        }

        EnvelopeAddress? address;
        if (path.Mailbox.Equals("postmaster", StringComparison.OrdinalIgnoreCase))
        {
            // RFC 5321 4.5.1: <Postmaster> without a domain must be accepted.
            address = new EnvelopeAddress("postmaster", _server.Config.LocalDomains.FirstOrDefault() ?? _host);
        }
        else if (!EnvelopeAddress.TryParse(path.Mailbox, allowUtf8: true, out address, out error))
        {
            Reply($"501 5.1.3 Bad recipient address syntax: {error}");
            return;
        }
        if (address!.IsInternational && !_tx.SmtpUtf8) { Reply(SmtpReplies.NeedSmtpUtf8); return; }
        string text = address.ToString();
        if (_tx.Recipients.Any(r => string.Equals(r.Address, text, StringComparison.OrdinalIgnoreCase)))
        {
            Reply(SmtpReplies.RecipientOk); // a duplicate gets one copy
            return;
        }
        if (_tx.Recipients.Count >= _server.Config.MaxRecipients) { Reply(SmtpReplies.TooManyRecipients); return; }
        switch (_server.Policy.Judge(address, mayRelay: _relayClient || _user is not null))
        {
            case RecipientVerdict.UnknownUser: Reply(SmtpReplies.UnknownUser(text)); return;
            case RecipientVerdict.RelayDenied: Reply(SmtpReplies.RelayDenied(text)); return;
            case RecipientVerdict.BadMailboxName: Reply(SmtpReplies.BadMailboxName(text)); return;
        }
        _tx.Recipients.Add(new EnvelopeRecipient
        {
            Address = text,
            State = _server.Config.HoldIncoming ? RecipientState.Held : RecipientState.Pending,
            Notify = notify,
            OriginalRecipient = original,
        });
        Reply(SmtpReplies.RecipientOk);
    }

    private static bool TryParseNotify(string value, out DsnNotify notify)
    {
        notify = DsnNotify.Default;
        var items = value.Split(',');
        foreach (string item in items)
        {
            switch (item.ToUpperInvariant())
            {
                case "NEVER" when items.Length == 1: notify = DsnNotify.Never; break;
                case "SUCCESS": notify |= DsnNotify.Success; break;
                case "FAILURE": notify |= DsnNotify.Failure; break;
                case "DELAY": notify |= DsnNotify.Delay; break;
                default: return false;
            }
        }
        return true;
    }

    // ------------------------------------------------------------------ message bodies

    private IncomingMessage? StartMessage(SmtpTransaction tx, out BodySink? sink)
    {
        sink = null;
        IncomingMessage message;
        try
        {
            message = _server.Store.CreateMessage();
        }
        catch (QueueFailureException ex)
        {
            _server.Logger.LogWarning(SmtpEvents.QueueFailure, ex, "Cannot start a message");
            return null;
        }
        sink = new BodySink(message.Body);
        sink.Write(Encoding.UTF8.GetBytes(ReceivedHeader(tx, message.Id)));
        return message;
    }

    /// <summary>The trace header of RFC 5321 4.4, with the protocol names of RFC 3848 and 6531.</summary>
    private string ReceivedHeader(SmtpTransaction tx, string id)
    {
        string protocol = (tx.SmtpUtf8 ? "UTF8SMTP" : _esmtp ? "ESMTP" : "SMTP")
                          + (_tls is not null ? "S" : "") + (_user is not null ? "A" : "");
        if (!_esmtp) protocol = "SMTP";
        var sb = new StringBuilder(256);
        sb.Append("Received: from ").Append(Printable(_helo ?? "unknown")).Append(" (unknown [").Append(_clientAddress).Append("])\r\n");
        if (_tls is not null)
            sb.Append("\t(using ").Append(_tls.SslProtocol).Append(" with cipher ").Append(_tls.NegotiatedCipherSuite).Append(")\r\n");
        sb.Append("\tby ").Append(_host).Append(" (MailOps) with ").Append(protocol).Append(" id ").Append(id);
        if (tx.Recipients.Count == 1) sb.Append("\r\n\tfor <").Append(tx.Recipients[0].Address).Append('>');
        sb.Append("; ").Append(DateUtils.FormatDate(DateTimeOffset.Now)).Append("\r\n");
        return sb.ToString();
    }

    private static string Printable(string s) =>
        string.Create(s.Length, s, static (span, text) =>
        {
            for (int i = 0; i < text.Length; i++) span[i] = char.IsControl(text[i]) || text[i] is '(' or ')' ? '?' : text[i];
        });

    private async Task DataAsync(string argument)
    {
        if (_tx is null) { Reply(SmtpReplies.MailFirst); return; }
        if (_tx.Chunking) { Reply(SmtpReplies.NotAfterBdat); return; }
        if (_tx.Recipients.Count == 0) { Reply(SmtpReplies.NoValidRecipients); return; }
        if (argument.Length > 0) { Reply(SmtpReplies.Syntax("Syntax: DATA")); return; }
        var tx = _tx;
        tx.Message = StartMessage(tx, out var sink);
        if (tx.Message is null)
        {
            await ResetTransactionAsync().ConfigureAwait(false);
            Reply(SmtpReplies.QueueTemporaryFailure);
            return;
        }
        Reply(SmtpReplies.StartData);
        var decoder = new BodyDecoder(dotStuffed: true, _server.Config.MaxMessageSize, sink!.Write);
        var started = Stopwatch.StartNew();
        while (true)
        {
            var result = await ReadAsync(IdleDeadline(), betweenCommands: false).ConfigureAwait(false);
            var buffer = result.Buffer;
            var status = decoder.Decode(buffer, out long consumed);
            if (status == DecodeStatus.BareNewline)
            {
                _server.Logger.LogInformation(SmtpEvents.Protocol, "Bare CR or LF in DATA from {Client}; closing", _clientAddress);
                throw new EndSession(SmtpReplies.BareNewlineInData(_host));
            }
            var end = buffer.GetPosition(consumed);
            _reader.AdvanceTo(end, status == DecodeStatus.End ? end : buffer.End);
            if (status == DecodeStatus.End) break;
            if (result.IsCompleted) throw new EndSession(null); // the client left mid-message: nothing was accepted
            CheckTransferRate(decoder, started);
        }
        await FinishMessageAsync(tx, decoder, sink).ConfigureAwait(false);
    }

    private void CheckTransferRate(BodyDecoder decoder, Stopwatch started)
    {
        var elapsed = started.Elapsed;
        if (elapsed > _server.Config.IdleTimeout && decoder.Received / elapsed.TotalSeconds < _server.Config.MinDataRate)
            throw new EndSession(SmtpReplies.TooSlow(_host));
    }

    private async Task BdatAsync(string argument)
    {
        var parts = argument.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 0 or > 2 || !TryParseOctets(parts[0], out long size)
            || (parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase)))
        {
            // Without a size the chunk cannot be skipped: the session is out of step for good.
            throw new EndSession(SmtpReplies.Syntax("Syntax: BDAT octets [LAST]"));
        }
        bool last = parts.Length == 2;
        var tx = _tx;
        string? refusal = tx is null ? SmtpReplies.MailFirst
            : tx.Recipients.Count == 0 ? SmtpReplies.NoValidRecipients
            : tx.ChunkFailure is not null ? SmtpReplies.BdatAfterFailure
            : null;
        if (refusal is not null)
        {
            // RFC 3030 2: a refused chunk is still read, so that the next command is found.
            await SkipAsync(size).ConfigureAwait(false);
            Reply(refusal);
            return;
        }
        tx!.Chunking = true;
        if (tx.Message is null)
        {
            tx.Message = StartMessage(tx, out var sink);
            if (tx.Message is null)
            {
                await SkipAsync(size).ConfigureAwait(false);
                tx.ChunkFailure = SmtpReplies.QueueTemporaryFailure;
                Reply(SmtpReplies.QueueTemporaryFailure);
                return;
            }
            tx.Sink = sink;
            tx.Decoder = new BodyDecoder(dotStuffed: false, _server.Config.MaxMessageSize, sink!.Write);
        }

        var decoder = tx.Decoder!;
        var started = Stopwatch.StartNew();
        long remaining = size;
        bool bare = false;
        while (remaining > 0)
        {
            var result = await ReadAsync(IdleDeadline(), betweenCommands: false).ConfigureAwait(false);
            var buffer = result.Buffer;
            var chunk = buffer.Slice(0, Math.Min(remaining, buffer.Length));
            if (!bare && decoder.Decode(chunk, out _) == DecodeStatus.BareNewline) bare = true;
            remaining -= chunk.Length;
            _reader.AdvanceTo(chunk.End);
            if (remaining > 0 && result.IsCompleted) throw new EndSession(null);
            CheckTransferRate(decoder, started);
        }
        if (bare)
        {
            tx.ChunkFailure = SmtpReplies.BdatAfterFailure;
            Reply(SmtpReplies.BareNewlineInChunk);
            return;
        }
        if (!last)
        {
            Reply(SmtpReplies.ChunkOk(size));
            return;
        }
        if (!decoder.AtLineStart) tx.Sink!.Write("\r\n"u8); // the body must end with a line end to be relayed by DATA
        await FinishMessageAsync(tx, decoder, tx.Sink!).ConfigureAwait(false);
    }

    private async Task SkipAsync(long octets)
    {
        long deadline = IdleDeadline();
        while (octets > 0)
        {
            var result = await ReadAsync(deadline, betweenCommands: false).ConfigureAwait(false);
            var take = result.Buffer.Slice(0, Math.Min(octets, result.Buffer.Length));
            octets -= take.Length;
            _reader.AdvanceTo(take.End);
            if (octets > 0 && result.IsCompleted) throw new EndSession(null);
            deadline = IdleDeadline();
        }
    }

    /// <summary>The end of a body: refuse it for what was found while reading, or commit it and answer 250.</summary>
    private async Task FinishMessageAsync(SmtpTransaction tx, BodyDecoder decoder, BodySink sink)
    {
        var message = tx.Message!;
        string reply;
        if (decoder.TooBig) reply = SmtpReplies.MessageTooBig;
        else if (decoder.LineTooLong) reply = SmtpReplies.TextLineTooLong;
        else if (sink.Failure is not null)
        {
            _server.Logger.LogWarning(SmtpEvents.QueueFailure, "Cannot write message {Id}: {Reason}", message.Id, sink.Failure.Message);
            reply = MailOpsException.IsDiskFullError(sink.Failure) ? SmtpReplies.InsufficientStorage : SmtpReplies.QueueTemporaryFailure;
        }
        else if (CountReceived(message.HeaderBlock) - 1 > MaxHops) reply = SmtpReplies.TooManyHops;
        else
        {
            var envelope = new Envelope
            {
                Sender = tx.Sender,
                Recipients = tx.Recipients,
                Origin = MessageOrigin.Smtp,
                ClientAddress = _clientAddress?.ToString(),
                ClientHelo = _helo,
                AuthenticatedUser = _user,
                EnvelopeId = tx.EnvelopeId,
                Return = tx.Return,
                EightBit = tx.EightBit,
                SmtpUtf8 = tx.SmtpUtf8,
            };
            try
            {
                // Mail from a trusted client (AUTH, RelayClients) is signed for its From: domain.
                if (_user is not null || _relayClient)
                {
                    var (_, dkimError) = await message.SignDkimAsync(_server.Dkim).ConfigureAwait(false);
                    if (dkimError is not null) _server.Logger.LogWarning(SmtpEvents.QueueFailure, "Message {Id} queued unsigned: {Reason}", message.Id, dkimError);
                }
                string id = await message.CommitAsync(envelope).ConfigureAwait(false);
                reply = SmtpReplies.Queued(id);
                _server.Logger.LogDebug(SmtpEvents.Accepted, "Queued {Id} from <{Sender}> for {Count} recipients, {Size} octets", id, tx.Sender, tx.Recipients.Count, envelope.Size);
            }
            catch (QueueFailureException ex)
            {
                _server.Logger.LogWarning(SmtpEvents.QueueFailure, "Cannot commit message {Id}: {Reason}", message.Id, ex.Message);
                reply = ex.SmtpReply;
            }
        }
        // The reply is owed whatever happens next; abandoning an uncommitted message never throws.
        Reply(reply);
        await ResetTransactionAsync().ConfigureAwait(false);
    }

    /// <summary>Received: fields in a header block (RFC 5321 6.3 loop detection).</summary>
    internal static int CountReceived(ReadOnlySpan<byte> header)
    {
        int count = 0;
        while (!header.IsEmpty)
        {
            int lf = header.IndexOf((byte)'\n');
            var line = lf < 0 ? header : header[..lf];
            if (line.Length <= 1) break; // the empty line that ends the header
            if (line.Length >= 9 && Ascii.EqualsIgnoreCase(line[..9], "Received:"u8)) count++;
            header = lf < 0 ? default : header[(lf + 1)..];
        }
        return count;
    }

    // ------------------------------------------------------------------ STARTTLS and AUTH

    private async Task StartTlsAsync(string argument)
    {
        if (_tls is not null) { Reply(SmtpReplies.AlreadyTls); return; }
        if (_server.Tls is null) { Reply(SmtpReplies.TlsUnavailable(_host)); return; }
        if (argument.Length > 0) { Reply(SmtpReplies.Syntax("Syntax: STARTTLS")); return; }
        if (_tx is not null) { Reply(SmtpReplies.NotInTransaction); return; }
        Reply(SmtpReplies.ReadyForTls);
        await FlushAsync().ConfigureAwait(false);

        // RFC 3207 5 / CVE-2011-0411: whatever the client sent after STARTTLS in the clear is
        // thrown away, never read as commands inside the TLS session.
        if (_reader.TryRead(out var early))
        {
            if (!early.Buffer.IsEmpty) _server.Logger.LogInformation(SmtpEvents.Protocol, "Discarded {Octets} octets pipelined after STARTTLS by {Client}", early.Buffer.Length, _clientAddress);
            _reader.AdvanceTo(early.Buffer.End);
        }
        await _reader.CompleteAsync().ConfigureAwait(false);
        await _writer.CompleteAsync().ConfigureAwait(false);

        var tls = new SslStream(_transport, leaveInnerStreamOpen: false);
        _stream = tls;
        ArmTimeout(IdleDeadline());
        try
        {
            await tls.AuthenticateAsServerAsync(_server.Tls, _timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException or OperationCanceledException)
        {
            _server.Logger.LogInformation(SmtpEvents.TlsFailure, "TLS handshake with {Client} failed: {Reason}", _clientAddress, ex.Message);
            (_reader, _writer) = CreatePipes(tls);
            throw new EndSession(null);
        }
        finally
        {
            DisarmTimeout();
        }
        (_reader, _writer) = CreatePipes(tls);
        _tls = tls;
        // RFC 3207 4.2: the session starts over; the client must say EHLO again.
        _helo = null;
        _esmtp = false;
        _user = null;
    }

    private async Task AuthAsync(string argument)
    {
        if (_tls is null) { Reply(SmtpReplies.EncryptionRequired); return; }
        if (!_server.AuthAvailable) { Reply("502 5.5.1 AUTH not available"); return; }
        if (_helo is null) { Reply(SmtpReplies.HeloFirst); return; }
        if (_user is not null) { Reply(SmtpReplies.AlreadyAuthenticated); return; }
        if (_tx is not null) { Reply(SmtpReplies.NotInTransaction); return; }
        if (_server.Auth.IsLockedOut(_clientAddress)) throw new EndSession(SmtpReplies.TooManyAuthFailures(_host));
        var parts = argument.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 0 or > 2) { Reply(SmtpReplies.Syntax("Syntax: AUTH mechanism [initial-response]")); return; }
        string mechanism = parts[0].ToUpperInvariant();
        string? initial = parts.Length == 2 ? parts[1] : null;

        string? name, password;
        if (mechanism == "PLAIN")
        {
            // RFC 4616: authzid NUL authcid NUL passwd. "=" is an empty initial response.
            byte[]? response = initial is null ? await ChallengeAsync("").ConfigureAwait(false) : initial == "=" ? [] : Decode(initial);
            if (response is null) return;
            var fields = Encoding.UTF8.GetString(response).Split('\0');
            if (fields.Length != 3) { Reply(SmtpReplies.AuthFailed); return; }
            if (fields[0].Length > 0 && fields[0] != fields[1]) { Reply(SmtpReplies.AuthFailed); return; } // no proxy authorization
            (name, password) = (fields[1], fields[2]);
        }
        else if (mechanism == "LOGIN")
        {
            byte[]? user = initial is null ? await ChallengeAsync("VXNlcm5hbWU6").ConfigureAwait(false) : Decode(initial);
            if (user is null) return;
            byte[]? pass = await ChallengeAsync("UGFzc3dvcmQ6").ConfigureAwait(false);
            if (pass is null) return;
            (name, password) = (Encoding.UTF8.GetString(user), Encoding.UTF8.GetString(pass));
        }
        else
        {
            Reply(SmtpReplies.NoSuchMechanism);
            return;
        }

        var account = _server.Config.Users.FirstOrDefault(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));
        bool? ok;
        ArmTimeout(IdleDeadline());
        try { ok = await _server.Auth.VerifyAsync(password, account?.PasswordHash, _timeout.Token).ConfigureAwait(false); }
        finally { DisarmTimeout(); }
        if (ok is null) { Reply(SmtpReplies.AuthTemporaryFailure); return; } // every verification slot stayed busy
        if (ok == false)
        {
            // The name is logged, never the password.
            _server.Logger.LogWarning(SmtpEvents.AuthFailure, "AUTH {Mechanism} failed for {User} from {Client}", mechanism, name, _clientAddress);
            bool lockedOut = _server.Auth.RecordFailure(_clientAddress);
            await Task.Delay(_server.Auth.FailureDelay).ConfigureAwait(false);
            if (lockedOut)
            {
                _server.Logger.LogWarning(SmtpEvents.AuthLockout, "{Client} failed AUTH {Limit} times within {Window}; refused until then", _clientAddress, _server.Config.AuthFailureLimit, _server.Config.AuthFailureWindow);
                throw new EndSession(SmtpReplies.TooManyAuthFailures(_host));
            }
            Reply(SmtpReplies.AuthFailed);
            return;
        }
        _user = account!.Name;
        Reply(SmtpReplies.AuthOk);

        byte[]? Decode(string base64)
        {
            try { return Convert.FromBase64String(base64); }
            catch (FormatException) { Reply(SmtpReplies.AuthBadEncoding); return null; }
        }

        async Task<byte[]?> ChallengeAsync(string challenge)
        {
            Reply(challenge.Length == 0 ? "334 " : "334 " + challenge);
            var line = await ReadLineAsync(MaxAuthLine).ConfigureAwait(false);
            if (line.EndOfInput) throw new EndSession(null);
            if (line.Error is not null) { Reply(line.Error); return null; }
            if (line.Text == "*") { Reply(SmtpReplies.AuthCancelled); return null; }
            return Decode(line.Text!);
        }
    }
}
