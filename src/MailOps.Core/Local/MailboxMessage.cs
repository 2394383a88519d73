using MailOps.Core.Queue;
using MimeKit;

namespace MailOps.Core.Local;

/// <summary>An attachment of a <see cref="MailboxMessage"/>, decoded.</summary>
public sealed class MailboxAttachment
{
    public required string Name { get; init; }
    public required string ContentType { get; init; }
    public long Size => Content.LongLength;
    /// <summary>The decoded octets, as the sender attached them.</summary>
    public required byte[] Content { get; init; }
    public override string ToString() => $"{Name} ({ContentType}, {Size} bytes)";
}

/// <summary>
/// A message a capturing server kept, or one delivered into a local Maildir, read back for a test
/// (docs/testing.md): its envelope, the header fields a test asks about, its bodies and
/// attachments, and the parsed MimeKit message for anything deeper.
/// </summary>
public sealed class MailboxMessage
{
    /// <summary>The queue id (captured) or the Maildir file name.</summary>
    public required string Id { get; init; }
    /// <summary>"capture", or the Maildir's folder under MaildirRoot ("example.org/alice").</summary>
    public required string Mailbox { get; init; }
    public required string Path { get; init; }
    /// <summary>When it arrived here.</summary>
    public required DateTimeOffset Arrived { get; init; }
    /// <summary>The envelope sender (MAIL FROM); empty for a bounce.</summary>
    public required string Sender { get; init; }
    /// <summary>The envelope recipients (RCPT TO): all of them for a captured message, the mailbox's own for a Maildir copy.</summary>
    public required IReadOnlyList<string> Recipients { get; init; }
    public required MimeMessage Message { get; init; }
    public long Size { get; init; }

    public string? From => Message.From.Count > 0 ? Message.From.ToString() : null;
    public IReadOnlyList<string> To => Message.To.Mailboxes.Select(m => m.Address).ToList();
    public IReadOnlyList<string> Cc => Message.Cc.Mailboxes.Select(m => m.Address).ToList();
    public string? Subject => Message.Subject;
    public DateTimeOffset? Date => Message.Headers.Contains(HeaderId.Date) ? Message.Date : null;
    public string? MessageId => Message.MessageId;
    public string? TextBody => Message.TextBody;
    public string? HtmlBody => Message.HtmlBody;

    /// <summary>The attachments, decoded.</summary>
    public IReadOnlyList<MailboxAttachment> Attachments => _attachments ??= Message.Attachments.OfType<MimePart>().Select(part =>
    {
        using var content = new MemoryStream();
        part.Content?.DecodeTo(content);
        return new MailboxAttachment { Name = part.FileName ?? "", ContentType = part.ContentType.MimeType, Content = content.ToArray() };
    }).ToList();
    private IReadOnlyList<MailboxAttachment>? _attachments;

    /// <summary>The message's octets as kept (an .eml file).</summary>
    public byte[] GetRaw() => File.ReadAllBytes(Path);

    public override string ToString() => $"{Id} {Subject}";
}

/// <summary>What <see cref="Mailboxes.Read"/> looks for; patterns take * and ?, case ignored.</summary>
public sealed class MailboxQuery
{
    /// <summary>An envelope recipient, or an address of To or Cc.</summary>
    public string? Address { get; init; }
    public string? Subject { get; init; }
    /// <summary>The envelope sender or an address of From.</summary>
    public string? From { get; init; }
    public DateTimeOffset? Since { get; init; }

    public bool Matches(MailboxMessage m) =>
        (Since is not { } since || m.Arrived >= since)
        && (Address is not { } address || m.Recipients.Concat(m.To).Concat(m.Cc).Any(a => Wildcard.IsMatch(a, address)))
        && (Subject is not { } subject || Wildcard.IsMatch(m.Subject ?? "", subject))
        && (From is not { } from || Wildcard.IsMatch(m.Sender, from) || m.Message.From.Mailboxes.Any(a => Wildcard.IsMatch(a.Address, from)));
}

/// <summary>Reading captured and Maildir messages back.</summary>
public static class Mailboxes
{
    /// <summary>
    /// The messages of a queue's capture store and of the Maildirs under <paramref name="maildirRoot"/>
    /// that match, newest first. Files that vanish or cannot be parsed while being read are skipped.
    /// </summary>
    public static IReadOnlyList<MailboxMessage> Read(string? queuePath, string? maildirRoot, MailboxQuery query)
    {
        var found = new List<MailboxMessage>();
        if (queuePath is not null && Directory.Exists(CaptureStore.DirectoryOf(queuePath)))
            foreach (var eml in Directory.EnumerateFiles(CaptureStore.DirectoryOf(queuePath), "*.eml"))
                if (ReadCaptured(eml) is { } m && query.Matches(m)) found.Add(m);
        if (maildirRoot is not null && Directory.Exists(maildirRoot))
            foreach (var file in MaildirFiles(maildirRoot))
                if (ReadMaildir(maildirRoot, file) is { } m && query.Matches(m)) found.Add(m);
        return found.OrderByDescending(m => m.Arrived).ThenByDescending(m => m.Id, StringComparer.Ordinal).ToList();
    }

    /// <summary>Removes a message read by <see cref="Read"/>; false when it was gone already.</summary>
    public static bool Remove(MailboxMessage message)
    {
        bool existed = File.Exists(message.Path);
        File.Delete(message.Path);
        if (message.Mailbox == "capture") File.Delete(System.IO.Path.ChangeExtension(message.Path, ".json"));
        return existed;
    }

    /// <summary>The directories <see cref="Read"/> looks into, for a watcher: the capture store and the Maildir root.</summary>
    public static IEnumerable<string> WatchedDirectories(string? queuePath, string? maildirRoot)
    {
        if (queuePath is not null) yield return CaptureStore.DirectoryOf(queuePath);
        if (maildirRoot is not null) yield return maildirRoot;
    }

    private static MailboxMessage? ReadCaptured(string eml)
    {
        try
        {
            string id = System.IO.Path.GetFileNameWithoutExtension(eml);
            var envelope = QueueJson.Deserialize(File.ReadAllBytes(System.IO.Path.ChangeExtension(eml, ".json")));
            return new MailboxMessage
            {
                Id = id, Mailbox = "capture", Path = eml, Arrived = envelope.Arrived, Sender = envelope.Sender,
                Recipients = envelope.Recipients.Select(r => r.Address).ToList(),
                Message = MimeMessage.Load(eml), Size = new FileInfo(eml).Length,
            };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or System.Text.Json.JsonException or InvalidDataException)
        {
            return null; // removed meanwhile, or not ours
        }
    }

    private static IEnumerable<string> MaildirFiles(string root)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 4, IgnoreInaccessible = true };
        foreach (var dir in Directory.EnumerateDirectories(root, "*", options))
        {
            string name = System.IO.Path.GetFileName(dir);
            if (name is not ("new" or "cur") || !Directory.Exists(System.IO.Path.Combine(System.IO.Path.GetDirectoryName(dir)!, "tmp"))) continue;
            foreach (var file in Directory.EnumerateFiles(dir)) yield return file;
        }
    }

    private static MailboxMessage? ReadMaildir(string root, string file)
    {
        try
        {
            var message = MimeMessage.Load(file);
            string sender = message.Headers[HeaderId.ReturnPath]?.Trim().Trim('<', '>') ?? "";
            var delivered = message.Headers.Where(h => h.Field.Equals("Delivered-To", StringComparison.OrdinalIgnoreCase)).Select(h => h.Value.Trim()).ToList();
            string mailboxDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetDirectoryName(file))!;
            var info = new FileInfo(file);
            return new MailboxMessage
            {
                Id = System.IO.Path.GetFileName(file), Mailbox = System.IO.Path.GetRelativePath(root, mailboxDir).Replace('\\', '/'), Path = file,
                Arrived = info.LastWriteTimeUtc, Sender = sender, Recipients = delivered.Take(1).ToList(), Message = message, Size = info.Length,
            };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
