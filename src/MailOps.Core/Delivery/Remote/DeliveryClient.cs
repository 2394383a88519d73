using MailKit;
using MailKit.Net.Smtp;
using MailOps.Core.Queue;
using MimeKit;
using Envelope = MailOps.Core.Queue.Envelope;

namespace MailOps.Core.Delivery.Remote;

/// <summary>
/// MailKit's SmtpClient as a relay needs it: a refused RCPT is recorded instead of failing the whole
/// message, the stored octets go out unprepared (<see cref="RawMessage"/>), SIZE= is the stored
/// size, and the DSN parameters received with the message (RFC 3461 NOTIFY, RET, ENVID) are passed on.
/// </summary>
internal sealed class DeliveryClient : SmtpClient
{
    private readonly LastReply _replies;

    public DeliveryClient() : this(new LastReply()) { }

    private DeliveryClient(LastReply replies) : base(replies) => _replies = replies;

    /// <summary>The server's last reply line as it was sent ("535 5.7.8 Authentication credentials invalid"), for the journal.</summary>
    public string LastServerReply => _replies.Line;

    /// <summary>Keeps the last line the server sent; what the client sends (credentials among it) is never looked at.</summary>
    private sealed class LastReply : IProtocolLogger
    {
        private string _pending = "";
        public string Line { get; private set; } = "";
        public IAuthenticationSecretDetector? AuthenticationSecretDetector { get; set; }
        public void LogConnect(Uri uri) { }
        public void LogClient(byte[] buffer, int offset, int count) { }

        public void LogServer(byte[] buffer, int offset, int count)
        {
            string text = _pending + System.Text.Encoding.UTF8.GetString(buffer, offset, count);
            int end = text.LastIndexOf('\n');
            if (end < 0) { _pending = text.Length > 4096 ? "" : text; return; }
            _pending = text[(end + 1)..];
            var complete = text[..end].TrimEnd('\r');
            int start = complete.LastIndexOf('\n');
            Line = complete[(start + 1)..].Trim();
        }

        public void Dispose() { }
    }

    private Envelope? _envelope;
    private Dictionary<string, EnvelopeRecipient> _recipients = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>RCPT replies other than 2xx of the current message, by address.</summary>
    public Dictionary<string, SmtpResponse> Refused { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>True once the server accepted MAIL FROM for the current message: a failure after that may follow delivery.</summary>
    public bool SenderAccepted { get; private set; }

    /// <summary>Sets the message whose transaction comes next.</summary>
    public void Begin(Envelope envelope, IEnumerable<EnvelopeRecipient> recipients)
    {
        _envelope = envelope;
        _recipients = recipients.ToDictionary(r => r.Address, StringComparer.OrdinalIgnoreCase);
        Refused.Clear();
        SenderAccepted = false;
        DeliveryStatusNotificationType = envelope.Return switch
        {
            DsnReturn.Full => MailKit.Net.Smtp.DeliveryStatusNotificationType.Full,
            DsnReturn.Headers => MailKit.Net.Smtp.DeliveryStatusNotificationType.HeadersOnly,
            _ => MailKit.Net.Smtp.DeliveryStatusNotificationType.Unspecified,
        };
    }

    protected override void OnSenderAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) => SenderAccepted = true;

    protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
        Refused[mailbox.Address] = response;

    // Every refusal is already in Refused; MailKit throws "no recipients accepted" after this returns.
    protected override void OnNoRecipientsAccepted(MimeMessage message) { }

    // The message goes out as stored (RawMessage): nothing to re-encode.
    protected override void Prepare(FormatOptions options, MimeMessage message, EncodingConstraint constraint, int maxLineLength) { }

    protected override long GetSize(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) => _envelope?.Size ?? 0;

    protected override Task<long> GetSizeAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
        Task.FromResult(_envelope?.Size ?? 0);

    protected override string GetEnvelopeId(MimeMessage message) => _envelope?.EnvelopeId!;

    protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox)
    {
        if (!_recipients.TryGetValue(mailbox.Address, out var r) || r.Notify == DsnNotify.Default) return null;
        if (r.Notify.HasFlag(DsnNotify.Never)) return DeliveryStatusNotification.Never;
        DeliveryStatusNotification notify = 0;
        if (r.Notify.HasFlag(DsnNotify.Success)) notify |= DeliveryStatusNotification.Success;
        if (r.Notify.HasFlag(DsnNotify.Failure)) notify |= DeliveryStatusNotification.Failure;
        if (r.Notify.HasFlag(DsnNotify.Delay)) notify |= DeliveryStatusNotification.Delay;
        return notify;
    }
}
