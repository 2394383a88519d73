using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MailOps.Core.Config;
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
/// TLS follows the host's requirement (a TLS policy, DANE, MTA-STS) or the route's transport
/// (docs/configuration.md, "Transports" and "TLS policy"): by default opportunistic (STARTTLS when
/// offered, any certificate accepted, a failed handshake retried in clear on the same address:
/// Postfix's "may"); Required, Implicit and Dane verify the certificate and never fall back;
/// credentials are sent over TLS only, and a refused AUTH defers 4.7.8, never bounces.
/// </summary>
internal sealed class RemoteSession : IAsyncDisposable
{
    internal static TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan ReuseTime = TimeSpan.FromMinutes(5);
    private const int MaxMessagesPerConnection = 100;

    private readonly string _helo;
    private readonly TimeProvider _clock;
    private readonly CertificateTrust _trust;
    private TransportSettings? _transport;
    private TlsRequirement? _requirement;
    private string _verdict = "not verified";
    private DeliveryClient? _client;
    private RouteHost? _host;
    private IPEndPoint? _endpoint;
    private DateTimeOffset _opened;
    private int _messages;
    /// <summary>How long setting up the kept connection took; reported with its first message only.</summary>
    private double _connectMs;

    public RemoteSession(string helo, TimeProvider clock, CertificateTrust? trust = null)
    {
        _helo = helo;
        _clock = clock;
        _trust = trust ?? new CertificateTrust();
    }

    private static readonly TlsRequirement Opportunistic = new(TransportTls.Opportunistic, nameof(TransportTls.Opportunistic));

    /// <summary>What applies to <paramref name="host"/>: its own requirement (MX), else the transport's mode (Routes, SmartHost).</summary>
    private static TlsRequirement RequirementOf(RouteHost host, TransportSettings? transport) =>
        host.Tls ?? (transport is null || transport.Tls == TransportTls.Opportunistic ? Opportunistic : new TlsRequirement(transport.Tls, transport.Tls.ToString()));

    /// <summary>Sends one message to its due recipients over the route. Never throws for network or protocol failures.</summary>
    public async Task<RemoteAttempt> DeliverAsync(MailRoute route, Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken)
    {
        var events = new List<JournalEvent>();
        if (_client is { IsConnected: true } && ReferenceEquals(_transport, route.Transport) && route.Hosts.Any(h => IsCurrentHost(h) && RequirementOf(h, route.Transport).SameAs(_requirement)) && _messages < MaxMessagesPerConnection && _clock.GetUtcNow() - _opened < ReuseTime)
        {
            var reused = await SendAsync(envelope, recipients, body, cancellationToken).ConfigureAwait(false);
            if (reused is not null) return new RemoteAttempt(reused, events, false);
            // The kept connection had died (the server closed it while idle): connect afresh.
        }
        await CloseAsync().ConfigureAwait(false);

        string lastError = "no host to try", status = "4.4.1";
        foreach (var host in route.Hosts)
        {
            if (host.Addresses.Count == 0) { lastError = $"{host.Name}: {host.Error}"; continue; }
            foreach (var address in host.Addresses)
            {
                var error = await ConnectAsync(host, address, route.Transport, events, cancellationToken).ConfigureAwait(false);
                if (error is not null)
                {
                    lastError = $"{host.Name}[{address}]: {error.Value.Reason}";
                    status = error.Value.Status ?? status;
                    continue;
                }
                var results = await SendAsync(envelope, recipients, body, cancellationToken).ConfigureAwait(false);
                if (results is not null) return new RemoteAttempt(results, events, false);
                const string Lost = "connection lost before the server answered MAIL FROM";
                lastError = $"{host.Name}[{address}]: {Lost}";
                // The trace names the host that dropped us before the next one is tried.
                events.Add(JournalEvents.Note(JournalEventType.Attempt, _clock.GetUtcNow(), Lost, host.Name, new IPEndPoint(address, host.Port).ToString(), "4.4.2"));
                await CloseAsync().ConfigureAwait(false);
            }
        }
        // A TLS or AUTH policy failure keeps its own 4.7.x: it defers, never bounces (Postfix's soft_bounce for AUTH).
        var failed = recipients.Select(r => RecipientResult.Local(r.Address, status, $"no host of {route.Domain} accepted the mail; last: {lastError}")).ToList();
        return new RemoteAttempt(failed, events, DestinationFailed: true);
    }

    private bool IsCurrentHost(RouteHost h) =>
        _host is not null && _endpoint is not null && h.Port == _endpoint.Port && h.Name.Equals(_host.Name, StringComparison.OrdinalIgnoreCase) && h.Addresses.Contains(_endpoint.Address);

    /// <summary>Null on success, else why this address failed and, for a TLS or AUTH policy failure, its 4.7.x status (journaled in <paramref name="events"/>).</summary>
    private async Task<(string Reason, string? Status)?> ConnectAsync(RouteHost host, IPAddress address, TransportSettings? transport, List<JournalEvent> events, CancellationToken cancellationToken)
    {
        var endpoint = new IPEndPoint(address, host.Port);
        var requirement = RequirementOf(host, transport);
        var mode = requirement.Mode;
        bool verify = mode is TransportTls.Required or TransportTls.Implicit or TransportTls.Dane;
        // The certificate's verdict, for the trace and for the reason of a refused handshake.
        string? verdict = null;
        for (int pass = 0; pass < 2; pass++)
        {
            var options = mode switch
            {
                TransportTls.None => SecureSocketOptions.None,
                TransportTls.Required or TransportTls.Encrypted or TransportTls.Dane => SecureSocketOptions.StartTls,
                TransportTls.Implicit => SecureSocketOptions.SslOnConnect,
                _ => pass == 0 ? SecureSocketOptions.StartTlsWhenAvailable : SecureSocketOptions.None,
            };
            long started = Stopwatch.GetTimestamp();
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            var client = new DeliveryClient
            {
                LocalDomain = transport?.HeloName ?? _helo,
                Timeout = (int)CommandTimeout.TotalMilliseconds,
                CheckCertificateRevocation = false,
                // Opportunistic TLS (RFC 3207 §4.1 lets an MTA relay without it): any certificate will
                // do (MTA-STS testing checks it for the trace only). Required and Implicit: the chain
                // must verify for the host's name. Dane: the certificate must match the TLSA records.
                ServerCertificateValidationCallback = (_, certificate, chain, errors) =>
                {
                    if (mode == TransportTls.Dane) verdict = CertificateTrust.WhyNotDane(requirement.Tlsa, certificate, chain, host.Name);
                    else if (verify || requirement.ReportOnly) verdict = _trust.Why(certificate, chain, errors);
                    else return true;
                    verdict = verdict is null ? "verified" : "not verified: " + verdict;
                    return !verify || verdict == "verified";
                },
            };
            string error;
            string? status = null;
            int? code = null;
            bool again = false;
            try
            {
                if (transport?.SourceAddress is { } source) socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
                using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    connectTimeout.CancelAfter(ConnectTimeout);
                    await socket.ConnectAsync(endpoint, connectTimeout.Token).ConfigureAwait(false);
                }
                await client.ConnectAsync(socket, host.Name, host.Port, options, cancellationToken).ConfigureAwait(false);
                if (transport?.Credential is { } credential)
                {
                    // Credentials go over TLS only, whatever the mode.
                    if (!client.IsEncrypted) throw new TlsPolicyException("4.7.4", "the relay offers no STARTTLS, and credentials are never sent in clear");
                    try
                    {
                        if (transport.Auth == TransportAuth.XOAuth2)
                        {
                            // An access token lives an hour: read it again at every connection.
                            var (current, fileError) = transport.ReadCredentialsFile();
                            if (fileError is not null) throw new TlsPolicyException("4.7.8", fileError);
                            credential = current ?? credential;
                            if (!client.AuthenticationMechanisms.Contains("XOAUTH2")) throw new NotSupportedException();
                            await client.AuthenticateAsync(new SaslMechanismOAuth2(credential.UserName, credential.Password), cancellationToken).ConfigureAwait(false);
                        }
                        else
                        {
                            client.AuthenticationMechanisms.Remove("XOAUTH2");
                            client.AuthenticationMechanisms.Remove("OAUTHBEARER");
                            await client.AuthenticateAsync(credential, cancellationToken).ConfigureAwait(false);
                        }
                    }
                    catch (Exception ex) when (ex is MailKit.Security.AuthenticationException or SmtpCommandException)
                    {
                        // The relay's own words (535 5.7.8 ...) go to the journal; the mail waits for the operator.
                        throw new TlsPolicyException("4.7.8", $"AUTH refused: {(client.LastServerReply.Length > 0 ? client.LastServerReply : ex.Message)}");
                    }
                    catch (NotSupportedException)
                    {
                        throw new TlsPolicyException("4.7.4", transport.Auth == TransportAuth.XOAuth2 ? "the relay does not offer AUTH XOAUTH2" : "the relay offers no AUTH mechanism MailOps can use (PLAIN, LOGIN, SCRAM)");
                    }
                }
                _client = client;
                _host = host;
                _endpoint = endpoint;
                _transport = transport;
                _requirement = requirement;
                _verdict = client.IsEncrypted ? verdict ?? "not verified" : "not verified";
                _opened = _clock.GetUtcNow();
                _messages = 0;
                _connectMs = Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 1);
                return null;
            }
            catch (TlsPolicyException ex)
            {
                (status, error) = (ex.Status, ex.Message);
            }
            catch (NotSupportedException) when (mode is TransportTls.Required or TransportTls.Encrypted or TransportTls.Dane)
            {
                (status, error) = ("4.7.4", "TLS is required and the server does not offer STARTTLS; not sent in clear");
            }
            catch (Exception ex) when ((verify || mode == TransportTls.Encrypted) && ex is SslHandshakeException or System.Security.Authentication.AuthenticationException)
            {
                string why = verdict is not null && verdict != "verified" ? verdict : FirstLine(ex.InnerException?.Message ?? ex.Message);
                (status, error) = ("4.7.5", $"TLS is required ({requirement.Policy}) and failed ({why}); not sent in clear");
            }
            catch (Exception ex) when (pass == 0 && mode == TransportTls.Opportunistic && ex is SslHandshakeException or System.Security.Authentication.AuthenticationException)
            {
                error = "TLS handshake failed (" + ex.Message + "); trying again without TLS";
                again = true;
            }
            catch (SmtpCommandException ex)
            {
                code = (int)ex.StatusCode;
                error = $"greeting refused: {code} {ex.Message}";
            }
            catch (Exception ex) when (ex is SocketException or IOException or SmtpProtocolException or TimeoutException or SslHandshakeException or System.Security.Authentication.AuthenticationException
                                       || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                error = ex is OperationCanceledException ? $"no connection within {ConnectTimeout.TotalSeconds:0} s" : ex.Message;
            }
            finally
            {
                if (_client != client)
                {
                    if (client.IsConnected) try { await client.DisconnectAsync(true, CancellationToken.None).ConfigureAwait(false); } catch (Exception ex) when (ex is IOException or SocketException or SmtpProtocolException or SmtpCommandException) { }
                    client.Dispose();
                    socket.Dispose();
                }
            }
            var failed = JournalEvents.Note(JournalEventType.Attempt, _clock.GetUtcNow(), "connection failed: " + error, host.Name, endpoint.ToString(), code?.ToString() ?? status);
            failed.DurationMs = Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 1);
            events.Add(failed);
            if (!again) return (error, status);
        }
        return ("TLS handshake failed, and so did the connection without TLS", null);
    }

    /// <summary>MailKit's handshake messages go on with a page of advice; the journal keeps the first line.</summary>
    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();

    /// <summary>A transport's TLS or AUTH policy was not met: defer with <see cref="Status"/>.</summary>
    private sealed class TlsPolicyException(string status, string message) : Exception(message)
    {
        public string Status { get; } = status;
    }

    /// <summary>
    /// One transaction. Null when the connection failed before the server accepted MAIL FROM
    /// (nothing can have been delivered: the caller may try another host).
    /// </summary>
    private async Task<IReadOnlyList<RecipientResult>?> SendAsync(Envelope envelope, IReadOnlyList<EnvelopeRecipient> recipients, Stream body, CancellationToken cancellationToken)
    {
        var client = _client!;
        string host = _host!.Name, address = _endpoint!.ToString();
        // Which policy applied, and whether the peer's certificate was verified, for the trace.
        string? tls = client.IsEncrypted ? $"{client.SslProtocol} {client.SslCipherSuite} ({_verdict}, {_requirement!.Policy})" : null;
        long started = Stopwatch.GetTimestamp();
        double Elapsed() => Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 1);
        double connectMs = _messages == 0 ? _connectMs : 0;
        RecipientResult Reply(string rcpt, int code, string text) => RecipientResult.FromReply(rcpt, code, text, host, address, tls, Elapsed()) with { ConnectMs = connectMs };

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
        using var message = RawMessage.Create(body, envelope.EightBit);
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
        _transport = null;
        _requirement = null;
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
