using System.Diagnostics;
using System.Net;
using System.Text;
using MailOps.Core;
using MailOps.Core.Addressing;
using MailOps.Core.Queue;
using Microsoft.Extensions.Logging;
using MimeKit.Utils;

namespace MailOps.Core.Smtp;

/// <summary>
/// The protocol of one SMTP session (RFC 5321) over an <see cref="SmtpConnection"/>: judges each
/// command against the session's state and the command table, streams message bodies into the
/// queue and answers. AUTH is <see cref="SmtpAuthenticator"/>'s; reading, writing, timeouts and
/// the TLS upgrade are the connection's.
/// </summary>
/// <remarks>
/// States: greeted -> (HELO/EHLO) -> ready -> (MAIL) -> in transaction -> (RCPT)+ -> (DATA | BDAT*)
/// -> ready. STARTTLS and AUTH are only allowed in "ready" (no transaction). A session ends on
/// QUIT, end of input, a timeout, a bare CR/LF inside DATA, too many errors, or server shutdown.
/// </remarks>
internal sealed class SmtpSession
{
    private const int MaxCommandLine = 512;   // RFC 5321 4.5.3.1.4, with CRLF
    private const int MaxErrors = 20;
    private const int MaxHops = 100;          // RFC 5321 6.3

    /// <summary>Where a session is, as far as the command table cares.</summary>
    [Flags]
    private enum States
    {
        /// <summary>Before HELO/EHLO.</summary>
        Greeted = 1,
        /// <summary>After HELO/EHLO, no transaction.</summary>
        Ready = 2,
        /// <summary>After MAIL.</summary>
        InTransaction = 4,
        Any = Greeted | Ready | InTransaction,
    }

    /// <summary>A command: the states it is allowed in, and its handler, which returns the reply (null when it sent its own).</summary>
    private readonly record struct Command(States AllowedIn, Func<SmtpSession, string, ValueTask<string?>> Handle);

    private static readonly Dictionary<string, Command> Commands = new(StringComparer.Ordinal)
    {
        ["EHLO"] = new(States.Any, (s, a) => s.HelloAsync(a, esmtp: true)),
        ["HELO"] = new(States.Any, (s, a) => s.HelloAsync(a, esmtp: false)),
        ["MAIL"] = new(States.Ready, (s, a) => new(s.Mail(a))),
        ["RCPT"] = new(States.InTransaction, (s, a) => new(s.Rcpt(a))),
        ["DATA"] = new(States.InTransaction, (s, a) => s.DataAsync(a)),
        ["BDAT"] = new(States.Any, (s, a) => s.BdatAsync(a)), // a refused chunk must still be read: BDAT judges the state itself
        ["RSET"] = new(States.Any, async (s, _) => { await s.ResetTransactionAsync().ConfigureAwait(false); return SmtpReplies.Ok; }),
        ["NOOP"] = new(States.Any, (_, _) => new(SmtpReplies.Ok)),
        ["QUIT"] = new(States.Any, (s, _) => { s._quit = true; return new(SmtpReplies.Bye(s._host)); }),
        ["VRFY"] = new(States.Any, (_, _) => new(SmtpReplies.CannotVrfy)),
        ["EXPN"] = new(States.Any, (_, _) => new(SmtpReplies.NoExpn)),
        ["HELP"] = new(States.Any, (_, _) => new(SmtpReplies.Help)),
        ["STARTTLS"] = new(States.Any, (s, a) => s.StartTlsAsync(a)),
        ["AUTH"] = new(States.Any, (s, a) => s.AuthAsync(a)),
    };

    private readonly SmtpServerContext _server;
    private readonly SmtpConnection _connection;
    private readonly SmtpAuthenticator _authenticator;
    private readonly CancellationToken _stopping;
    private readonly string _host;
    private readonly bool _relayClient;
    private readonly ListenerRole _role;

    private string? _helo;
    private bool _esmtp;
    private string? _user;
    private bool _quit;
    private SmtpTransaction? _tx;

    public SmtpSession(SmtpServerContext server, Stream transport, IPAddress? clientAddress, CancellationToken stopping, ListenerRole role = ListenerRole.Mx)
    {
        _role = role;
        _server = server;
        _connection = new SmtpConnection(server, transport, clientAddress);
        _authenticator = new SmtpAuthenticator(server, _connection);
        _stopping = stopping;
        _host = server.Config.HostName;
        _relayClient = server.Policy.IsRelayClient(_connection.ClientAddress);
    }

    private IPAddress? ClientAddress => _connection.ClientAddress;
    /// <summary>Neither a RelayClient nor authenticated: message and recipient rates and greylisting apply.</summary>
    private bool Untrusted => !_relayClient && _user is null;
    private States State => _helo is null ? States.Greeted : _tx is null ? States.Ready : States.InTransaction;
    private void Reply(string line) => _connection.Reply(line);

    /// <summary>Runs the session to its end. Never throws: every failure ends the session quietly or with a 4xx.</summary>
    public async Task RunAsync()
    {
        using var registration = _stopping.Register(static c => ((SmtpConnection)c!).RequestStop(), _connection);
        try
        {
            // RFC 8314: on a submissions port TLS starts with the connection, before the greeting.
            if (_role == ListenerRole.Submissions) await _connection.UpgradeToTlsAsync(_server.Tls!).ConfigureAwait(false);
            // Blocklists (postscreen): checked once, before the greeting, on the MX role only (a
            // submitting user on a dynamic address is listed by policy lists, and is welcome).
            if (_role == ListenerRole.Mx && !_relayClient && _server.Dnsbl is { } dnsbl && ClientAddress is { } client
                && await dnsbl.ListedAsync(client, _stopping).ConfigureAwait(false) is { } zones)
            {
                _server.Logger.LogInformation(SmtpEvents.Refused, "Refused {Client}: listed by {Zones}", client, string.Join(", ", zones));
                throw new SmtpSessionEnd(SmtpReplies.Blocklisted(client, zones));
            }
            Reply(await FaultAsync("Connect", null, []).ConfigureAwait(false) is { } refusal ? throw new SmtpSessionEnd(refusal) : SmtpReplies.Greeting(_host));
            while (!_quit)
            {
                var line = await _connection.ReadLineAsync(MaxCommandLine).ConfigureAwait(false);
                if (line.EndOfInput) break;
                if (line.Error is not null) Reply(line.Error);
                else await HandleCommandAsync(line.Text!).ConfigureAwait(false);
                if (_connection.Errors >= MaxErrors) throw new SmtpSessionEnd(SmtpReplies.TooManyErrors(_host));
            }
            await _connection.FlushAsync().ConfigureAwait(false);
        }
        catch (SmtpSessionEnd end)
        {
            await _connection.TryFinalReplyAsync(end.Reply).ConfigureAwait(false);
        }
        catch (Exception ex) when (SmtpConnection.IsConnectionError(ex))
        {
            // The client went away (reset, broken pipe, TLS failure): nothing to answer.
        }
        catch (Exception ex)
        {
            // A bug must not kill the listener; the client is told to come back later.
            _server.Logger.LogError(SmtpEvents.SessionError, ex, "Session with {Client} failed", ClientAddress);
            await _connection.TryFinalReplyAsync("421 4.3.0 " + _host + " Internal error, closing connection").ConfigureAwait(false);
        }
        finally
        {
            if (_tx is not null) await _tx.DisposeAsync().ConfigureAwait(false);
            await _connection.CloseAsync().ConfigureAwait(false);
        }
    }

    /// <summary>An octet count as SIZE= and BDAT give it: 1 to 19 digits, fitting a long.</summary>
    private static bool TryParseOctets(string text, out long octets)
    {
        octets = 0;
        return text.Length is > 0 and <= 19 && text.All(char.IsAsciiDigit) && long.TryParse(text, out octets);
    }

    // ------------------------------------------------------------------ commands

    private async Task HandleCommandAsync(string line)
    {
        var (verb, argument) = SmtpCommandParser.SplitVerb(line);
        _connection.Stage = Commands.ContainsKey(verb) ? verb : "UNKNOWN";
        if (!Commands.TryGetValue(verb, out var command))
        {
            Reply(SmtpReplies.Unrecognized);
            return;
        }
        var state = State;
        if ((command.AllowedIn & state) == 0)
        {
            Reply(state == States.Greeted && verb == "MAIL" ? SmtpReplies.HeloFirst
                : state == States.InTransaction ? SmtpReplies.NestedMail
                : SmtpReplies.MailFirst);
            return;
        }
        try
        {
            // A test server's fault rule answers instead of the command (docs/testing.md).
            if (FaultStage(verb) is { } stage && !_server.Faults.IsEmpty
                && await FaultAsync(stage, verb == "MAIL" ? PathOf(argument) : _tx?.Sender, verb == "RCPT" ? [PathOf(argument)] : []).ConfigureAwait(false) is { } fault)
            {
                Reply(fault);
                return;
            }
            if (await command.Handle(this, argument).ConfigureAwait(false) is { } reply) Reply(reply);
        }
        catch (Exception ex) when (ex is not SmtpSessionEnd && !SmtpConnection.IsConnectionError(ex))
        {
            // An unexpected failure on the receive path is temporary for the client (house style 4).
            _server.Logger.LogError(SmtpEvents.SessionError, ex, "{Verb} from {Client} failed", verb, ClientAddress);
            await ResetTransactionAsync().ConfigureAwait(false);
            Reply(SmtpReplies.InternalError);
        }
    }

    private static string? FaultStage(string verb) => verb switch
    {
        "HELO" or "EHLO" => "Helo",
        "MAIL" => "Mail",
        "RCPT" => "Rcpt",
        _ => null,
    };

    /// <summary>The address of a MAIL or RCPT argument ("FROM:&lt;a@b&gt; SIZE=10" gives a@b), for matching a fault rule.</summary>
    private static string PathOf(string argument)
    {
        int open = argument.IndexOf('<'), close = open < 0 ? -1 : argument.IndexOf('>', open);
        return open >= 0 && close > open ? argument[(open + 1)..close] : argument;
    }

    /// <summary>
    /// Applies the first matching fault rule of <paramref name="stage"/>: waits its Delay, then
    /// drops the connection (no reply) or returns its reply; null when no rule matches or the rule
    /// only delays.
    /// </summary>
    private async ValueTask<string?> FaultAsync(string stage, string? sender, IEnumerable<string> recipients, string? subject = null)
    {
        if (_server.Faults.Match(stage, sender, recipients, subject) is not { } rule) return null;
        _server.Logger.LogInformation(SmtpEvents.Refused, "fault rule for {Client}: {Rule}", ClientAddress, rule);
        if (rule.Delay > TimeSpan.Zero) await Task.Delay(rule.Delay, _stopping).ConfigureAwait(false);
        if (rule.Drop) throw new SmtpSessionEnd(null);
        return rule.Reply;
    }

    private async ValueTask ResetTransactionAsync()
    {
        if (_tx is null) return;
        var tx = _tx;
        _tx = null;
        await tx.DisposeAsync().ConfigureAwait(false);
    }

    private async ValueTask<string?> HelloAsync(string argument, bool esmtp)
    {
        string name = argument.Trim();
        if (name.Length == 0 || name.Contains(' '))
        {
            return SmtpReplies.Syntax(esmtp ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        }
        // HELO/EHLO resets the transaction (RFC 5321 4.1.4).
        await ResetTransactionAsync().ConfigureAwait(false);
        _helo = name;
        _esmtp = esmtp;
        if (!esmtp) return $"250 {_host}";
        var lines = new List<string>
        {
            $"{_host} Hello {name} [{ClientAddress}]",
            "PIPELINING",
            $"SIZE {_server.Config.MaxMessageSize}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        };
        if (_connection.Tls is null && _server.Tls is not null) lines.Add("STARTTLS");
        if (_connection.Tls is not null && _server.AuthAvailable && _user is null) lines.Add("AUTH PLAIN LOGIN");
        lines.Add("CHUNKING");
        lines.Add("DSN");
        lines.Add("HELP");
        for (int i = 0; i < lines.Count; i++) Reply((i == lines.Count - 1 ? "250 " : "250-") + lines[i]);
        return null;
    }

    private string Mail(string argument)
    {
        // Submission (RFC 6409): only authenticated users submit, and only over TLS.
        if (_role != ListenerRole.Mx && _user is null) return _connection.Tls is null ? SmtpReplies.StartTlsFirst : SmtpReplies.AuthRequired;
        var path = SmtpCommandParser.ParsePath(argument, "FROM:", out string? error);
        if (path is null) return SmtpReplies.Syntax(error!);

        bool eightBit = false, smtpUtf8 = false;
        string? envelopeId = null;
        var ret = DsnReturn.Default;
        foreach (var (key, value) in path.Parameters)
        {
            switch (key)
            {
                case "SIZE":
                    if (value is null || !TryParseOctets(value, out long declared))
                    return SmtpReplies.Syntax("Syntax: SIZE=octets");
                    if (declared > _server.Config.MaxMessageSize) return SmtpReplies.MessageTooBig;
                    break;
                case "BODY":
                    if (string.Equals(value, "8BITMIME", StringComparison.OrdinalIgnoreCase)) eightBit = true;
                    else if (!string.Equals(value, "7BIT", StringComparison.OrdinalIgnoreCase)) return SmtpReplies.UnsupportedParameter("BODY=" + value);
                    break;
                case "SMTPUTF8":
                    if (value is not null) return SmtpReplies.Syntax("SMTPUTF8 takes no value");
                    smtpUtf8 = true;
                    break;
                case "RET":
                    if (string.Equals(value, "FULL", StringComparison.OrdinalIgnoreCase)) ret = DsnReturn.Full;
                    else if (string.Equals(value, "HDRS", StringComparison.OrdinalIgnoreCase)) ret = DsnReturn.Headers;
                    else return SmtpReplies.Syntax("Syntax: RET=FULL or RET=HDRS");
                    break;
                case "ENVID":
                    if (value is null || value.Length > 100 || !SmtpCommandParser.TryDecodeXtext(value, out string id)) return SmtpReplies.Syntax("Bad ENVID");
                    envelopeId = id;
                    break;
                case "AUTH":
                    // RFC 4954 5: the server may ignore AUTH= from an untrusted client; it does.
                    break;
                default:
                    return SmtpReplies.UnsupportedParameter(key);
            }
        }

        string sender = "";
        if (path.Mailbox.Length > 0)
        {
            if (!EnvelopeAddress.TryParse(path.Mailbox, allowUtf8: true, out var address, out error))
            return $"501 5.1.7 Bad sender address syntax: {error}";
            if (address!.IsInternational && !smtpUtf8) return SmtpReplies.NeedSmtpUtf8;
            sender = address.ToString();
            if (_user is not null && !_server.Senders.MayUse(_user, sender)) return SmtpReplies.SenderNotOwned(sender, _user);
        }
        if (Untrusted && !_server.Rates.TryCount(ClientRateLimits.Kind.Message, ClientAddress))
        {
            _server.Logger.LogInformation(SmtpEvents.Refused, "{Client} passed RateLimits.MessagesPerMinute", ClientAddress);
            return SmtpReplies.MessageRate;
        }
        _tx = new SmtpTransaction { Sender = sender, EightBit = eightBit, SmtpUtf8 = smtpUtf8, EnvelopeId = envelopeId, Return = ret };
        return SmtpReplies.SenderOk;
    }

    private string Rcpt(string argument)
    {
        if (_tx!.Chunking) return SmtpReplies.NotInTransaction;
        var path = SmtpCommandParser.ParsePath(argument, "TO:", out string? error);
        if (path is null) return SmtpReplies.Syntax(error!);

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
            if (key is "NOTIFY" or "ORCPT") return SmtpReplies.Syntax($"Bad {key} parameter");
            return SmtpReplies.UnsupportedParameter(key);
        }

        EnvelopeAddress? address;
        if (path.Mailbox.Equals("postmaster", StringComparison.OrdinalIgnoreCase))
        {
            // RFC 5321 4.5.1: <Postmaster> without a domain must be accepted.
            address = new EnvelopeAddress("postmaster", _server.Config.LocalDomains.FirstOrDefault() ?? _host);
        }
        else if (!EnvelopeAddress.TryParse(path.Mailbox, allowUtf8: true, out address, out error))
        {
            return $"501 5.1.3 Bad recipient address syntax: {error}";
        }
        if (address!.IsInternational && !_tx.SmtpUtf8) return SmtpReplies.NeedSmtpUtf8;
        string text = address.ToString();
        if (_tx.Recipients.Any(r => string.Equals(r.Address, text, StringComparison.OrdinalIgnoreCase)))
            return SmtpReplies.RecipientOk; // a duplicate gets one copy
        if (_tx.Recipients.Count >= _server.Config.MaxRecipients) return SmtpReplies.TooManyRecipients;
        // A capturing test server takes anything from this machine and nothing from elsewhere.
        var verdict = _server.Config.Capture
            ? ClientAddress is { } client && System.Net.IPAddress.IsLoopback(client.IsIPv4MappedToIPv6 ? client.MapToIPv4() : client) ? RecipientVerdict.Accept : RecipientVerdict.RelayDenied
            : _server.Policy.Judge(address, mayRelay: _relayClient || _user is not null);
        switch (verdict)
        {
            case RecipientVerdict.UnknownUser: return SmtpReplies.UnknownUser(text);
            case RecipientVerdict.RelayDenied: return SmtpReplies.RelayDenied(text);
            case RecipientVerdict.BadMailboxName: return SmtpReplies.BadMailboxName(text);
        }
        if (Untrusted && _server.Greylist is { } greylist && !greylist.Allows(_tx.Sender, text, ClientAddress)) return SmtpReplies.Greylisted(text);
        if (Untrusted && !_server.Rates.TryCount(ClientRateLimits.Kind.Recipient, ClientAddress))
        {
            _server.Logger.LogInformation(SmtpEvents.Refused, "{Client} passed RateLimits.RecipientsPerMinute", ClientAddress);
            return SmtpReplies.RecipientRate;
        }
        _tx.Recipients.Add(new EnvelopeRecipient
        {
            Address = text,
            State = _server.Config.HoldIncoming ? RecipientState.Held : RecipientState.Pending,
            Notify = notify,
            OriginalRecipient = original,
        });
        return SmtpReplies.RecipientOk;
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
                          + (_connection.Tls is not null ? "S" : "") + (_user is not null ? "A" : "");
        if (!_esmtp) protocol = "SMTP";
        var sb = new StringBuilder(256);
        if (_role != ListenerRole.Mx && _user is not null && !_server.Config.RevealSubmitter)
            // Submitted mail does not tell the world where the user was (their address, their laptop's name).
            sb.Append("Received: from ").Append(_host).Append(" (authenticated user ").Append(Printable(_user)).Append(")\r\n");
        else
            sb.Append("Received: from ").Append(Printable(_helo ?? "unknown")).Append(" (unknown [").Append(ClientAddress).Append("])\r\n");
        if (_connection.Tls is not null)
            sb.Append("\t(using ").Append(_connection.Tls.SslProtocol).Append(" with cipher ").Append(_connection.Tls.NegotiatedCipherSuite).Append(")\r\n");
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

    private async ValueTask<string?> DataAsync(string argument)
    {
        if (_tx!.Chunking) return SmtpReplies.NotAfterBdat;
        if (_tx.Recipients.Count == 0) return SmtpReplies.NoValidRecipients;
        if (argument.Length > 0) return SmtpReplies.Syntax("Syntax: DATA");
        var tx = _tx;
        tx.Message = StartMessage(tx, out var sink);
        if (tx.Message is null)
        {
            await ResetTransactionAsync().ConfigureAwait(false);
            return SmtpReplies.QueueTemporaryFailure;
        }
        Reply(SmtpReplies.StartData);
        var decoder = new BodyDecoder(dotStuffed: true, _server.Config.MaxMessageSize, sink!.Write);
        var started = Stopwatch.StartNew();
        while (true)
        {
            var result = await _connection.ReadAsync(_connection.IdleDeadline(), betweenCommands: false).ConfigureAwait(false);
            var buffer = result.Buffer;
            var status = decoder.Decode(buffer, out long consumed);
            if (status == DecodeStatus.BareNewline)
            {
                _server.Logger.LogInformation(SmtpEvents.Protocol, "Bare CR or LF in DATA from {Client}; closing", ClientAddress);
                throw new SmtpSessionEnd(SmtpReplies.BareNewlineInData(_host));
            }
            var end = buffer.GetPosition(consumed);
            _connection.Reader.AdvanceTo(end, status == DecodeStatus.End ? end : buffer.End);
            if (status == DecodeStatus.End) break;
            if (result.IsCompleted) throw new SmtpSessionEnd(null); // the client left mid-message: nothing was accepted
            CheckTransferRate(decoder, started);
        }
        return await FinishMessageAsync(tx, decoder, sink).ConfigureAwait(false);
    }

    private void CheckTransferRate(BodyDecoder decoder, Stopwatch started)
    {
        var elapsed = started.Elapsed;
        if (elapsed > _server.Config.IdleTimeout && decoder.Received / elapsed.TotalSeconds < _server.Config.MinDataRate)
            throw new SmtpSessionEnd(SmtpReplies.TooSlow(_host));
    }

    private async ValueTask<string?> BdatAsync(string argument)
    {
        var parts = argument.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 0 or > 2 || !TryParseOctets(parts[0], out long size)
            || (parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase)))
        {
            // Without a size the chunk cannot be skipped: the session is out of step for good.
            throw new SmtpSessionEnd(SmtpReplies.Syntax("Syntax: BDAT octets [LAST]"));
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
            await _connection.SkipAsync(size).ConfigureAwait(false);
            return refusal;
        }
        tx!.Chunking = true;
        if (tx.Message is null)
        {
            tx.Message = StartMessage(tx, out var sink);
            if (tx.Message is null)
            {
                await _connection.SkipAsync(size).ConfigureAwait(false);
                tx.ChunkFailure = SmtpReplies.QueueTemporaryFailure;
                return SmtpReplies.QueueTemporaryFailure;
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
            var result = await _connection.ReadAsync(_connection.IdleDeadline(), betweenCommands: false).ConfigureAwait(false);
            var buffer = result.Buffer;
            var chunk = buffer.Slice(0, Math.Min(remaining, buffer.Length));
            if (!bare && decoder.Decode(chunk, out _) == DecodeStatus.BareNewline) bare = true;
            remaining -= chunk.Length;
            _connection.Reader.AdvanceTo(chunk.End);
            if (remaining > 0 && result.IsCompleted) throw new SmtpSessionEnd(null);
            CheckTransferRate(decoder, started);
        }
        if (bare)
        {
            tx.ChunkFailure = SmtpReplies.BdatAfterFailure;
            return SmtpReplies.BareNewlineInChunk;
        }
        if (!last) return SmtpReplies.ChunkOk(size);
        if (!decoder.AtLineStart) tx.Sink!.Write("\r\n"u8); // the body must end with a line end to be relayed by DATA
        return await FinishMessageAsync(tx, decoder, tx.Sink!).ConfigureAwait(false);
    }

    /// <summary>The end of a body: refuse it for what was found while reading, or commit it and answer 250.</summary>
    private async Task<string> FinishMessageAsync(SmtpTransaction tx, BodyDecoder decoder, BodySink sink)
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
        else if (_user is not null && ForeignFrom(message.HeaderFields, _user) is { } foreign) reply = SmtpReplies.FromNotOwned(foreign, _user);
        else if (!_server.Faults.IsEmpty && await FaultAsync("Data", tx.Sender, tx.Recipients.Select(r => r.Address), message.HeaderFields?[MimeKit.HeaderId.Subject]).ConfigureAwait(false) is { } fault)
            reply = fault; // not queued: the test server answers as the rule says
        else
        {
            var envelope = new Envelope
            {
                Sender = tx.Sender,
                Recipients = tx.Recipients,
                Origin = MessageOrigin.Smtp,
                ClientAddress = ClientAddress?.ToString(),
                ClientHelo = _helo,
                AuthenticatedUser = _user,
                ReceivedTls = _connection.Tls is { } tls ? $"{tls.SslProtocol} {tls.NegotiatedCipherSuite}" : null,
                EnvelopeId = tx.EnvelopeId,
                Return = tx.Return,
                EightBit = tx.EightBit,
                SmtpUtf8 = tx.SmtpUtf8,
            };
            try
            {
                if (_server.Inbound is { } inbound && _role == ListenerRole.Mx && Untrusted && ClientAddress is { } client
                    && tx.Recipients.Any(r => _server.Policy.IsOurs(QueuedMail.DomainOf(r.Address)))
                    && await AuthenticateInboundAsync(inbound, client, tx, message).ConfigureAwait(false) is { } refusal)
                {
                    await ResetTransactionAsync().ConfigureAwait(false);
                    return refusal;
                }
                // Submitted mail gets a Message-ID and a Date when it has none (RFC 6409 8.2, 8.3);
                // relayed mail stays byte for byte. Mail from a trusted client (AUTH, RelayClients)
                // is signed for its From: domain.
                if (_role != ListenerRole.Mx && _user is not null)
                {
                    var (fields, messageId) = MissingFields(message.HeaderFields, message.Id);
                    if (fields.Length > 0 && await message.AddHeaderFieldsAsync(fields).ConfigureAwait(false)) envelope.MessageId ??= messageId;
                }
                if (_user is not null || _relayClient)
                {
                    var (_, dkimError) = await message.SignDkimAsync(_server.Dkim).ConfigureAwait(false);
                    if (dkimError is not null) _server.Logger.LogWarning(SmtpEvents.QueueFailure, "Message {Id} queued unsigned: {Reason}", message.Id, dkimError);
                }
                envelope.ReceiveSeconds = Math.Round(System.Diagnostics.Stopwatch.GetElapsedTime(tx.Started).TotalSeconds, 3);
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
        // Abandoning an uncommitted message never throws: the reply is owed whatever happens.
        await ResetTransactionAsync().ConfigureAwait(false);
        return reply;
    }

    /// <summary>
    /// SPF, DKIM, DMARC and ARC for mail from the Internet to our domains: an earlier
    /// Authentication-Results field in our name is renamed X-Removed-Auth-Results (same length: it
    /// is overwritten in place), ours goes on top, and with Enforce DMARC's p=reject refuses the
    /// message (the reply, returned) and p=quarantine holds it.
    /// </summary>
    private async Task<string?> AuthenticateInboundAsync(InboundAuthentication inbound, IPAddress client, SmtpTransaction tx, IncomingMessage message)
    {
        var parsed = await message.ParseAsync().ConfigureAwait(false);
        var verdict = await inbound.EvaluateAsync(client, _helo ?? "", tx.Sender, parsed, _stopping).ConfigureAwait(false);
        _server.Logger.LogInformation(SmtpEvents.Accepted, "{Client} <{Sender}>: spf={Spf} dkim={Dkim} dmarc={Dmarc} arc={Arc}", client, tx.Sender, verdict.Spf, verdict.Dkim, verdict.Dmarc, verdict.Arc);
        bool enforce = _server.Config.InboundAuthentication == "Enforce";
        if (enforce && verdict.Disposition == DmarcDisposition.Reject)
            return $"550 5.7.1 Message rejected: it fails DMARC and {verdict.FromDomain} asks for rejection (p=reject)";
        foreach (int offset in ForgedResults(message.HeaderBlock))
            await message.OverwriteHeaderAsync(offset, "X-Removed-Auth-Results"u8.ToArray()).ConfigureAwait(false);
        await message.PrependHeaderFieldsAsync($"Authentication-Results: {verdict.HeaderValue}\r\n").ConfigureAwait(false);
        if (enforce && verdict.Disposition == DmarcDisposition.Quarantine)
            foreach (var recipient in tx.Recipients) recipient.State = RecipientState.Held;
        return null;
    }

    /// <summary>Where the Authentication-Results fields that name our HostName start, in <paramref name="header"/> (each field name is 22 octets).</summary>
    private List<int> ForgedResults(ReadOnlySpan<byte> header)
    {
        var offsets = new List<int>();
        var text = Encoding.Latin1.GetString(header);
        int at = 0;
        while (at < text.Length)
        {
            int lineEnd = text.IndexOf('\n', at);
            if (lineEnd < 0) break;
            if (text.AsSpan(at).StartsWith("Authentication-Results:", StringComparison.OrdinalIgnoreCase))
            {
                string id = text[(at + 23)..lineEnd].Split(';')[0].Trim().Split(' ')[0];
                if (id.Equals(_host, StringComparison.OrdinalIgnoreCase)) offsets.Add(at);
            }
            at = lineEnd + 1;
        }
        return offsets;
    }

    /// <summary>The first From: address of the header <paramref name="fields"/> that <paramref name="user"/> may not send as, or null (also when the header does not parse: MAIL FROM was judged already).</summary>
    private string? ForeignFrom(MimeKit.HeaderList? fields, string user)
    {
        foreach (var from in fields?.Where(f => f.Id == MimeKit.HeaderId.From) ?? [])
        {
            if (!MimeKit.InternetAddressList.TryParse(from.Value, out var list)) return from.Value.Trim();
            foreach (var mailbox in list.Mailboxes)
                if (!_server.Senders.MayUse(user, mailbox.Address)) return mailbox.Address;
        }
        return null;
    }

    /// <summary>"Message-ID: ...\r\nDate: ...\r\n" for those the header <paramref name="fields"/> lack (and the Message-ID added), or empty.</summary>
    private (string Fields, string? MessageId) MissingFields(MimeKit.HeaderList? fields, string id)
    {
        if (fields is null) return ("", null);
        var sb = new StringBuilder();
        string? messageId = null;
        if (!fields.Contains(MimeKit.HeaderId.MessageId))
        {
            messageId = $"<{id}@{_host}>";
            sb.Append("Message-ID: ").Append(messageId).Append("\r\n");
        }
        if (!fields.Contains(MimeKit.HeaderId.Date)) sb.Append("Date: ").Append(DateUtils.FormatDate(DateTimeOffset.Now)).Append("\r\n");
        return (sb.ToString(), messageId);
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

    private async ValueTask<string?> StartTlsAsync(string argument)
    {
        if (_connection.Tls is not null) return SmtpReplies.AlreadyTls;
        if (_server.Tls is null) return SmtpReplies.TlsUnavailable(_host);
        if (argument.Length > 0) return SmtpReplies.Syntax("Syntax: STARTTLS");
        if (_tx is not null) return SmtpReplies.NotInTransaction;
        Reply(SmtpReplies.ReadyForTls);
        await _connection.FlushAsync().ConfigureAwait(false);
        await _connection.UpgradeToTlsAsync(_server.Tls).ConfigureAwait(false);
        // RFC 3207 4.2: the session starts over; the client must say EHLO again.
        _helo = null;
        _esmtp = false;
        _user = null;
        return null;
    }

    private async ValueTask<string?> AuthAsync(string argument)
    {
        if (_connection.Tls is null) return _role == ListenerRole.Mx ? SmtpReplies.EncryptionRequired : SmtpReplies.StartTlsFirst;
        if (!_server.AuthAvailable) return "502 5.5.1 AUTH not available";
        if (_helo is null) return SmtpReplies.HeloFirst;
        if (_user is not null) return SmtpReplies.AlreadyAuthenticated;
        if (_tx is not null) return SmtpReplies.NotInTransaction;
        _user = await _authenticator.AuthenticateAsync(argument).ConfigureAwait(false);
        return null;
    }
}
