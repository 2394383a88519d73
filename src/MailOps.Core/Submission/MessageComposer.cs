using System.Reflection;
using MimeKit;

namespace MailOps.Core.Submission;

/// <summary>A message described by parameters (<c>Submit-MailMessage -From -To -Subject -Body ...</c>).</summary>
public sealed class MessageDraft
{
    public required string From { get; init; }
    public IReadOnlyList<string> To { get; init; } = [];
    public IReadOnlyList<string> Cc { get; init; } = [];
    /// <summary>Envelope recipients only: never written into the queued message.</summary>
    public IReadOnlyList<string> Bcc { get; init; } = [];
    public string? Subject { get; init; }
    public string? Body { get; init; }
    public bool BodyAsHtml { get; init; }
    /// <summary>Full paths of files to attach.</summary>
    public IReadOnlyList<string> Attachments { get; init; } = [];
    /// <summary>Extra header fields, added in order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];
}

/// <summary>A parameter would have put a line break into a header: refused, so no header can be injected.</summary>
public sealed class HeaderInjectionException(string field)
    : ArgumentException($"The value for {field} contains a line break (CR or LF); header fields are one line, so it is refused.", field)
{
    public string Field { get; } = field;
}

/// <summary>A message ready for <see cref="MessageSubmitter"/>: its octets, and the envelope sender its headers name.</summary>
public sealed class MessageContent : IDisposable
{
    internal MessageContent(Stream content)
    {
        Content = content;
        var headers = HeaderList.Load(content);
        content.Position = 0;
        string? Mailbox(HeaderId id) =>
            headers[id] is { } value && InternetAddressList.TryParse(value, out var list) ? list.Mailboxes.FirstOrDefault()?.Address : null;
        HeaderSender = Mailbox(HeaderId.Sender) ?? Mailbox(HeaderId.From);
    }

    /// <summary>The message, positioned at its start.</summary>
    public Stream Content { get; }
    /// <summary>The address in Sender:, else the first in From:; null when neither has one.</summary>
    public string? HeaderSender { get; }

    public void Dispose() => Content.Dispose();
}

/// <summary>
/// Turns what a PowerShell user hands <c>Submit-MailMessage</c> into message octets: parameters
/// (built with MimeKit), a MimeMessage object, or a file. MailKit/MimeKit types never cross into
/// the cmdlet assembly (they live in the module's own load context), so objects arrive as
/// <see cref="object"/> and a MimeMessage from another copy of MimeKit is written through its
/// own WriteTo.
/// </summary>
public static class MessageComposer
{
    /// <exception cref="HeaderInjectionException">A value holds CR or LF.</exception>
    /// <exception cref="SubmissionException">An address cannot be parsed (Usage), or no recipient is given.</exception>
    /// <exception cref="FileNotFoundException">An attachment does not exist.</exception>
    public static MessageContent Compose(MessageDraft draft) => FromMimeMessage(Build(draft));

    /// <summary>
    /// The draft as a MimeKit MimeMessage of the module's own MimeKit, typed object because MimeKit
    /// stays out of the cmdlet assembly (New-MailMessage). PowerShell reads and changes it through
    /// its members, and Submit-MailMessage takes it back as it takes any MimeMessage.
    /// </summary>
    /// <exception cref="HeaderInjectionException">A value holds CR or LF.</exception>
    /// <exception cref="SubmissionException">An address cannot be parsed (Usage), or no recipient is given.</exception>
    /// <exception cref="FileNotFoundException">An attachment does not exist.</exception>
    public static object BuildMessage(MessageDraft draft) => Build(draft);

    private static MimeMessage Build(MessageDraft draft)
    {
        var message = new MimeMessage();
        message.From.Add(ParseMailbox(draft.From, "From"));
        AddAddresses(message.To, draft.To, "To");
        AddAddresses(message.Cc, draft.Cc, "Cc");
        AddAddresses(message.Bcc, draft.Bcc, "Bcc");
        if (message.To.Count + message.Cc.Count + message.Bcc.Count == 0)
            throw new SubmissionException(SubmissionErrorKind.Usage, "No recipients: give at least one of -To, -Cc or -Bcc.");
        message.Subject = SingleLine(draft.Subject ?? "", "Subject");
        foreach (var (name, value) in draft.Headers)
        {
            SingleLine(name, "a header name");
            if (name.Length == 0 || name.Any(c => c <= ' ' || c >= 127 || c == ':'))
                throw new SubmissionException(SubmissionErrorKind.Usage, $"'{name}' is not a header field name (printable ASCII, no colon or space).");
            message.Headers.Add(name, SingleLine(value, name + ":"));
        }
        var body = new BodyBuilder();
        if (draft.BodyAsHtml) body.HtmlBody = draft.Body ?? "";
        else body.TextBody = draft.Body ?? "";
        foreach (var path in draft.Attachments) body.Attachments.Add(path);
        message.Body = body.ToMessageBody();
        message.Date = DateTimeOffset.Now;
        return message;
    }

    /// <summary>
    /// A MimeMessage (from this module's MimeKit or any other copy), or an object with a public
    /// <c>WriteTo(Stream)</c> or <c>WriteTo(Stream, CancellationToken)</c>, or bytes.
    /// </summary>
    /// <exception cref="ArgumentException">The object is none of these.</exception>
    public static MessageContent FromObject(object message)
    {
        switch (message)
        {
            case MimeMessage mime:
                return FromMimeMessage(mime);
            case byte[] bytes:
                return new MessageContent(new MemoryStream(bytes, writable: false));
        }
        var writeTo = message.GetType().GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .Where(m => m.Name == "WriteTo")
            .Select(m => (Method: m, Parameters: m.GetParameters()))
            .FirstOrDefault(m => m.Parameters.Length >= 1 && m.Parameters[0].ParameterType == typeof(Stream)
                                 && (m.Parameters.Length == 1 || (m.Parameters.Length == 2 && m.Parameters[1].ParameterType == typeof(CancellationToken))));
        if (writeTo.Method is null)
            throw new ArgumentException($"A {message.GetType().FullName} is not a message: pass a MimeKit MimeMessage, a path to an .eml file, or -From/-To/-Subject/-Body.", nameof(message));
        var stream = new MemoryStream();
        writeTo.Method.Invoke(message, writeTo.Parameters.Length == 1 ? [stream] : [stream, CancellationToken.None]);
        stream.Position = 0;
        return new MessageContent(stream);
    }

    /// <summary>An RFC 5322 message in a file (.eml), submitted byte for byte.</summary>
    public static MessageContent FromFile(string path) =>
        new(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024));

    private static MessageContent FromMimeMessage(MimeMessage message)
    {
        var stream = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        message.WriteTo(format, stream);
        stream.Position = 0;
        return new MessageContent(stream);
    }

    private static void AddAddresses(InternetAddressList list, IReadOnlyList<string> addresses, string field)
    {
        foreach (var text in addresses)
        {
            SingleLine(text, field);
            if (!InternetAddressList.TryParse(text, out var parsed) || parsed.Mailboxes.Count() == 0)
                throw new SubmissionException(SubmissionErrorKind.Usage, $"Bad {field} address '{text}'.");
            list.AddRange(parsed);
        }
    }

    private static MailboxAddress ParseMailbox(string text, string field)
    {
        SingleLine(text, field);
        if (!MailboxAddress.TryParse(text, out var mailbox))
            throw new SubmissionException(SubmissionErrorKind.Usage, $"Bad {field} address '{text}'.");
        return mailbox;
    }

    private static string SingleLine(string value, string field) =>
        value.AsSpan().IndexOfAny('\r', '\n') >= 0 ? throw new HeaderInjectionException(field) : value;
}
