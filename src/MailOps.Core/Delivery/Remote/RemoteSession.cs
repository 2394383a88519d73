using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailOps.Core.Queue;
using MimeKit;
using Envelope = MailOps.Core.Queue.Envelope;

namespace MailOps.Core.Delivery.Remote;

/// <summary>What one remote attempt produced.</summary>
internal sealed record RemoteAttempt(IReadOnlyList<RecipientResult> Results, IReadOnlyList<JournalEvent> ConnectionEvents, bool DestinationFailed);

/// <summary>
/// One delivery worker's SMTP connection (qmail-remote, with Postfix's connection reuse): it walks
/// a route's hosts and addresses in order until one greets with 2xx (a refused connection, a
/// timeout or a 4xx/5xx greeting moves on to the next), sends one message per transaction, and
/// keeps the connection for the next message to the same host for a bounded time and count.
/// TLS is opportunistic: STARTTLS when offered, any certificate accepted, and a failed handshake
/// is retried in clear on the same address (Postfix's "may" level).
/// </summary>
internal sealed class RemoteSession : IAsyncDisposable
{
    internal static TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan ReuseTime = TimeSpan.FromMinutes(5);
    private const int MaxMessagesPerConnection = 100;

    private readonly string _helo;
    private readonly TimeProvider _clock;
    private DeliveryClient? _client;
    private RouteHost? _host;
    private IPEndPoint? _endpoint;
    private DateTimeOffset _opened;
    private int _messages;

    public RemoteSession(string helo, TimeProvider clock)
    {
        _helo = helo;
        _clock = clock;
    }

    /// <summary>Sends one message to its due recipients over the route. Never throws for network or protocol failures.</summary>
    public async Task<RemoteAttempt> DeliverAsync(MailRoute route, Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken)
    {
        var events = new List<JournalEvent>();
        if (_client is { IsConnected: true } && route.Hosts.Any(IsCurrentHost) && _messages < MaxMessagesPerConnection && _clock.GetUtcNow() - _opened < ReuseTime)
        {
            var reused = await SendAsync(envelope, recipients, body, cancellationToken).ConfigureAwait(false);
            if (reused is not null) return new RemoteAttempt(reused, events, false);
            // The kept connection had died (the server closed it while idle): connect afresh.
        }
        await CloseAsync().ConfigureAwait(false);

        string lastError = "no host to try";
        foreach (var host in route.Hosts)
        {
            if (host.Addresses.Count == 0) { lastError = $"{host.Name}: {host.Error}"; continue; }
            foreach (var address in host.Addresses)
            {
                var error = await ConnectAsync(host, address, events, cancellationToken).ConfigureAwait(false);
                if (error is not null) { lastError = $"{host.Name}[{address}]: {error}"; continue; }
                var results = await SendAsync(envelope, recipients, body, cancellationToken).ConfigureAwait(false);
                if (results is not null) return new RemoteAttempt(results, events, false);
                lastError = $"{host.Name}[{address}]: connection lost before the server answered MAIL FROM";
                await CloseAsync().ConfigureAwait(false);
            }
        }
        var failed = recipients.Select(r => RecipientResult.Local(r.Address, "4.4.1", $"no host of {route.Domain} accepted the mail; last: {lastError}")).ToList();
        return new RemoteAttempt(failed, events, DestinationFailed: true);
    }

    private bool IsCurrentHost(RouteHost h) =>
        _host is not null && _endpoint is not null && h.Port == _endpoint.Port && h.Name.Equals(_host.Name, StringComparison.OrdinalIgnoreCase) && h.Addresses.Contains(_endpoint.Address);

    /// <summary>Null on success, else why this address failed (journaled in <paramref name="events"/>).</summary>
    private async Task<string?> ConnectAsync(RouteHost host, IPAddress address, List<JournalEvent> events, CancellationToken cancellationToken)
    {
        var endpoint = new IPEndPoint(address, host.Port);
        for (int pass = 0; pass < 2; pass++)
        {
            bool tryTls = pass == 0;
            long started = Stopwatch.GetTimestamp();
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            var client = new DeliveryClient
            {
                LocalDomain = _helo,
                Timeout = (int)CommandTimeout.TotalMilliseconds,
                CheckCertificateRevocation = false,
                // Opportunistic TLS (RFC 3207 §4.1 lets an MTA relay without it): any certificate will do.
                ServerCertificateValidationCallback = (_, _, _, _) => true,
            };
            string error;
            int? code = null;
            try
            {
                using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    connectTimeout.CancelAfter(ConnectTimeout);
                    await socket.ConnectAsync(endpoint, connectTimeout.Token).ConfigureAwait(false);
                }
                await client.ConnectAsync(socket, host.Name, host.Port, tryTls ? SecureSocketOptions.StartTlsWhenAvailable : SecureSocketOptions.None, cancellationToken).ConfigureAwait(false);
                _client = client;
                _host = host;
                _endpoint = endpoint;
                _opened = _clock.GetUtcNow();
                _messages = 0;
                return null;
            }
            catch (Exception ex) when (tryTls && ex is SslHandshakeException or System.Security.Authentication.AuthenticationException)
            {
                error = "TLS handshake failed (" + ex.Message + "); trying again without TLS";
            }
            catch (SmtpCommandException ex)
            {
                code = (int)ex.StatusCode;
                error = $"greeting refused: {code} {ex.Message}";
                pass = 2;
            }
            catch (Exception ex) when (ex is SocketException or IOException or SmtpProtocolException or TimeoutException or SslHandshakeException or System.Security.Authentication.AuthenticationException
                                       || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                error = ex is OperationCanceledException ? $"no connection within {ConnectTimeout.TotalSeconds:0} s" : ex.Message;
                pass = 2;
            }
            finally
            {
                if (_client != client)
                {
                    client.Dispose();
                    socket.Dispose();
                }
            }
            var failed = JournalEvents.Note(JournalEventType.Attempt, _clock.GetUtcNow(), "connection failed: " + error, host.Name, endpoint.ToString(), code?.ToString());
            failed.DurationMs = Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 1);
            events.Add(failed);
            if (pass >= 2) return error;
        }
        return "TLS handshake failed, and so did the connection without TLS";
    }

    /// <summary>
    /// One transaction. Null when the connection failed before the server accepted MAIL FROM
    /// (nothing can have been delivered: the caller may try another host).
    /// </summary>
    private async Task<IReadOnlyList<RecipientResult>?> SendAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken)
    {
        var client = _client!;
        string host = _host!.Name, address = _endpoint!.ToString();
        string? tls = client.IsEncrypted ? $"{client.SslProtocol} {client.SslCipherSuite}" : null;
        long started = Stopwatch.GetTimestamp();
        double Elapsed() => Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 1);
        RecipientResult Reply(string rcpt, int code, string text) => RecipientResult.FromReply(rcpt, code, text, host, address, tls, Elapsed());

        var mailboxes = new List<MailboxAddress>(recipients.Count);
        var results = new List<RecipientResult>(recipients.Count);
        foreach (var r in recipients)
        {
            try { mailboxes.Add(new MailboxAddress("", r.Address)); }
            catch (ParseException ex) { results.Add(RecipientResult.Local(r.Address, "5.1.3", $"the address cannot be sent by SMTP: {ex.Message}")); }
        }
        if (mailboxes.Count == 0) return results;
        var sent = recipients.Where(r => mailboxes.Any(m => m.Address.Equals(r.Address, StringComparison.OrdinalIgnoreCase))).ToList();

        _messages++;
        client.Begin(envelope, sent);
        var message = RawMessage.Create(body, envelope.EightBit);
        var sender = new MailboxAddress("", envelope.Sender); // "" is the null reverse-path <> of a bounce
        try
        {
            string reply = await client.SendAsync(RawMessage.Format, message, sender, mailboxes, cancellationToken).ConfigureAwait(false);
            foreach (var r in sent)
                results.Add(client.Refused.TryGetValue(r.Address, out var refused) ? Reply(r.Address, (int)refused.StatusCode, refused.Response) : Reply(r.Address, 250, reply));
            return results;
        }
        catch (SmtpCommandException ex)
        {
            // MAIL refused: every recipient gets that reply. DATA refused (or no RCPT accepted):
            // refused recipients keep their own reply, accepted ones get the DATA reply.
            foreach (var r in sent)
                results.Add(ex.ErrorCode != SmtpErrorCode.SenderNotAccepted && client.Refused.TryGetValue(r.Address, out var refused)
                    ? Reply(r.Address, (int)refused.StatusCode, refused.Response)
                    : Reply(r.Address, (int)ex.StatusCode, ex.Message));
            return results;
        }
        catch (ServiceNotAuthenticatedException ex)
        {
            foreach (var r in sent) results.Add(Reply(r.Address, 530, ex.Message));
            return results;
        }
        catch (NotSupportedException ex) when (envelope.SmtpUtf8 && !client.Capabilities.HasFlag(SmtpCapabilities.UTF8))
        {
            // RFC 6531 §3.2: an SMTPUTF8 message the next hop cannot take bounces 5.6.7.
            foreach (var r in sent) results.Add(RecipientResult.Local(r.Address, "5.6.7", ex.Message, host));
            return results;
        }
        catch (NotSupportedException ex)
        {
            // Something else the client library cannot do with this server: not the sender's fault,
            // so not a bounce. Tried again later (and visible as the last error meanwhile).
            foreach (var r in sent) results.Add(RecipientResult.Local(r.Address, "4.3.0", "cannot send to this server: " + ex.Message, host));
            return results;
        }
        catch (Exception ex) when (ex is IOException or SocketException or SmtpProtocolException or ServiceNotConnectedException
                                   || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            bool anyReply = client.SenderAccepted || client.Refused.Count > 0;
            await CloseAsync().ConfigureAwait(false);
            if (!anyReply) return null;
            // After MAIL was accepted the message may have been delivered: defer, and accept a
            // possible duplicate on retry (at least once, as qmail).
            foreach (var r in sent)
                results.Add(client.Refused.TryGetValue(r.Address, out var refused)
                    ? Reply(r.Address, (int)refused.StatusCode, refused.Response)
                    : RecipientResult.Local(r.Address, "4.4.2", $"connection to {host}[{address}] lost during the transaction: {ex.Message}", host));
            return results;
        }
    }

    /// <summary>QUIT and close the kept connection, if any.</summary>
    public async Task CloseAsync()
    {
        var client = _client;
        _client = null;
        if (client is null) return;
        try
        {
            if (client.IsConnected)
            {
                client.Timeout = 5000;
                await client.DisconnectAsync(quit: true).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or SmtpProtocolException or SmtpCommandException or OperationCanceledException)
        {
            // The server went first; nothing is lost.
        }
        finally
        {
            client.Dispose();
        }
    }

    public async ValueTask DisposeAsync() => await CloseAsync().ConfigureAwait(false);
}
