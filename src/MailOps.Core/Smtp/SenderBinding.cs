using MailOps.Core.Config;

namespace MailOps.Core.Smtp;

/// <summary>
/// Which addresses an authenticated user may send as, in MAIL FROM and in From: (Postfix's
/// reject_sender_login_mismatch): the user's SendAs entries, their own name when it is an
/// address, and the Aliases whose targets are one of those. A user with none of these may send
/// as anyone, as before sender binding existed.
/// </summary>
internal sealed class SenderBinding
{
    private readonly Dictionary<string, HashSet<string>?> _allowed = new(StringComparer.OrdinalIgnoreCase);

    public SenderBinding(MailOpsConfig config)
    {
        foreach (var user in config.Users)
        {
            var own = new HashSet<string>(user.SendAs.Select(a => a.Trim()), StringComparer.OrdinalIgnoreCase);
            if (user.Name.Contains('@')) own.Add(user.Name);
            // An alias that delivers to one of the user's addresses is theirs too (sales@ -> alice@).
            foreach (var (alias, targets) in config.Aliases)
                if (alias.Contains('@') && targets.Any(t => own.Contains(t.Trim()))) own.Add(alias);
            _allowed[user.Name] = own.Count == 0 || own.Contains("*") ? null : own;
        }
    }

    /// <summary>Whether <paramref name="user"/> may send as <paramref name="address"/>; the null sender is always allowed.</summary>
    public bool MayUse(string user, string address)
    {
        if (address.Length == 0) return true;
        if (!_allowed.TryGetValue(user, out var allowed) || allowed is null) return true;
        if (allowed.Contains(address)) return true;
        int at = address.LastIndexOf('@');
        return at > 0 && allowed.Contains(address[at..]);
    }
}
