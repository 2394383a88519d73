using MailOps.Core.Addressing;
using MailOps.Core.Config;

namespace MailOps.Core.Local;

/// <summary>
/// The local address space (docs/configuration.md and docs/delivery.md; qmail's locals, virtualdomains, users/assign and
/// .qmail aliases): which domains are delivered here, which mailboxes exist, and where an address
/// ends up. The SMTP listener asks <see cref="Exists"/> at RCPT time; local delivery asks
/// <see cref="Resolve"/>.
/// </summary>
public sealed class LocalMailboxes
{
    private const int MaxAliasDepth = 10;
    private readonly HashSet<string> _local;
    private readonly Dictionary<string, string> _virtual;
    private readonly HashSet<string> _mailboxes = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _catchAllDomains = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, List<string>> _aliases;

    public LocalMailboxes(MailOpsConfig config)
    {
        _local = new(config.LocalDomains, StringComparer.OrdinalIgnoreCase);
        _virtual = new(config.VirtualDomains, StringComparer.OrdinalIgnoreCase);
        _aliases = new(config.Aliases, StringComparer.OrdinalIgnoreCase);
        foreach (string m in config.Mailboxes)
        {
            if (m.StartsWith("*@", StringComparison.Ordinal)) _catchAllDomains.Add(m[2..]);
            else _mailboxes.Add(m);
        }
    }

    /// <summary>True when the domain's mail is delivered here (local or virtual).</summary>
    public bool IsOurs(string domain) => _local.Contains(domain) || _virtual.ContainsKey(domain);

    /// <summary>
    /// postmaster always exists; then the address itself, an alias, <c>*@domain</c>, or for
    /// <c>user-ext@domain</c> the mailbox or alias <c>user@domain</c> (qmail's user-ext rule).
    /// </summary>
    public bool Exists(EnvelopeAddress recipient) => Find(recipient.LocalPart, recipient.Domain) is not null;

    /// <summary>The address (mailbox or alias) that receives <c>local@domain</c>, or null.</summary>
    private string? Find(string local, string domain)
    {
        string exact = local + "@" + domain;
        if (_mailboxes.Contains(exact) || _aliases.ContainsKey(exact)) return exact;
        // user-ext: the longest user- prefix that is a mailbox or an alias.
        for (int dash = local.LastIndexOf('-'); dash > 0; dash = local.LastIndexOf('-', dash - 1))
        {
            string prefix = local[..dash] + "@" + domain;
            if (_mailboxes.Contains(prefix) || _aliases.ContainsKey(prefix)) return prefix;
        }
        if (_catchAllDomains.Contains(domain)) return exact;
        if (local.Equals("postmaster", StringComparison.OrdinalIgnoreCase)) return "postmaster@" + domain;
        return null;
    }

    /// <summary>
    /// Where mail for <paramref name="address"/> goes: Maildirs here and addresses elsewhere (an
    /// alias may forward off-site), after Aliases, user-ext and VirtualDomains. Alias loops are
    /// cut: an address already expanded is not expanded again.
    /// </summary>
    public LocalDestination Resolve(string address)
    {
        var mailboxes = new List<LocalMailbox>();
        var forwards = new List<string>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        string? error = null;
        Expand(address, 0);
        return new LocalDestination(mailboxes, forwards, error);

        void Expand(string current, int depth)
        {
            if (!seen.Add(current)) return;
            if (!EnvelopeAddress.TryParse(current, allowUtf8: true, out var parsed, out var why))
            {
                error ??= $"alias target <{current}> is not an address: {why}";
                return;
            }
            if (!IsOurs(parsed!.Domain))
            {
                forwards.Add(current);
                return;
            }
            string? found = Find(parsed.LocalPart, parsed.Domain);
            if (found is null)
            {
                error ??= $"no mailbox here by the name <{current}>";
                return;
            }
            if (_aliases.TryGetValue(found, out var targets))
            {
                if (depth >= MaxAliasDepth) { error ??= $"aliases nested deeper than {MaxAliasDepth} at <{current}>"; return; }
                foreach (var target in targets) Expand(target.Trim(), depth + 1);
                return;
            }
            int at = found.LastIndexOf('@');
            string user = found[..at].ToLowerInvariant(), domain = found[(at + 1)..].ToLowerInvariant();
            string folder = _virtual.TryGetValue(domain, out var prefix) ? prefix : domain;
            if (!IsSafeName(user) || !IsSafeFolder(folder))
            {
                error ??= $"<{current}> cannot name a mailbox directory";
                return;
            }
            mailboxes.Add(new LocalMailbox(Path.Combine(folder, user), current));
        }
    }

    /// <summary>
    /// A path segment that stays inside MaildirRoot. The listener asks it of a local part at RCPT,
    /// so mail that could never be stored is refused, not bounced.
    /// </summary>
    internal static bool IsSafeName(string name) =>
        name.Length > 0 && name[0] != '.' && name.IndexOfAny(['/', '\\', '\0', ':']) < 0 && !name.Any(char.IsControl);

    /// <summary>A VirtualDomains target: a relative folder under MaildirRoot, every segment a safe name.</summary>
    public static bool IsSafeFolder(string folder) =>
        folder.Length > 0 && !Path.IsPathRooted(folder) && folder.Split('/').All(IsSafeName);
}

/// <summary>A Maildir under MaildirRoot (<c>domain/user</c>) and the address written as its Delivered-To.</summary>
public sealed record LocalMailbox(string RelativePath, string DeliveredTo);

/// <summary>The result of <see cref="LocalMailboxes.Resolve"/>; <see cref="Error"/> is set when any part cannot be delivered.</summary>
public sealed record LocalDestination(IReadOnlyList<LocalMailbox> Mailboxes, IReadOnlyList<string> Forwards, string? Error);
