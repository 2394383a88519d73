using System.Net;

namespace MailOps.Core.Addressing;

/// <summary>
/// An RFC 5321 Mailbox (section 4.1.2): <c>Local-part "@" ( Domain / address-literal )</c>, with the
/// RFC 6531 extension to UTF-8 when allowed. Limits of section 4.5.3.1: local part 64 octets,
/// domain 255, path 256.
/// </summary>
public sealed record EnvelopeAddress(string LocalPart, string Domain)
{
    public const int MaxLocalPart = 64;
    public const int MaxDomain = 255;
    public const int MaxPath = 256;

    public override string ToString() => LocalPart + "@" + Domain;

    /// <summary>True when any part is non-ASCII (needs SMTPUTF8 to be relayed).</summary>
    public bool IsInternational => ToString().Any(c => c > 127);

    /// <summary>Parses a mailbox; <paramref name="error"/> says what is wrong when it is not one.</summary>
    public static bool TryParse(string text, bool allowUtf8, out EnvelopeAddress? address, out string? error)
    {
        address = null;
        int at = text.LastIndexOf('@');
        if (at <= 0) { error = "an address needs a local part and a domain (user@domain)"; return false; }
        string local = text[..at], domain = text[(at + 1)..];
        if (System.Text.Encoding.UTF8.GetByteCount(text) > MaxPath - 2) { error = "address longer than 254 octets"; return false; }
        if ((error = CheckLocalPart(local, allowUtf8)) is not null) return false;
        if ((error = CheckDomain(domain, allowUtf8)) is not null) return false;
        address = new EnvelopeAddress(local, domain.StartsWith('[') ? domain : domain.ToLowerInvariant());
        return true;
    }

    /// <summary>
    /// Completes a bare local name with <paramref name="defaultDomain"/> (qmail's defaultdomain) and
    /// <c>user@host+</c> with <paramref name="plusDomain"/>, then parses.
    /// </summary>
    public static bool TryParseCompleting(string text, string defaultDomain, string? plusDomain, out EnvelopeAddress? address, out string? error)
    {
        text = text.Trim();
        if (text.Length > 1 && text[0] == '<' && text[^1] == '>') text = text[1..^1];
        if (!text.Contains('@') && text.Length > 0 && !text.Contains(' ')) text = text + "@" + defaultDomain;
        else if (text.EndsWith('+') && plusDomain is not null) text = text[..^1] + "." + plusDomain;
        return TryParse(text, allowUtf8: true, out address, out error);
    }

    private static string? CheckLocalPart(string local, bool allowUtf8)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(local) > MaxLocalPart) return "local part longer than 64 octets";
        if (local.Length >= 2 && local[0] == '"' && local[^1] == '"')
        {
            // Quoted-string: qtextSMTP or quoted-pairSMTP.
            for (int i = 1; i < local.Length - 1; i++)
            {
                char c = local[i];
                if (c == '\\')
                {
                    if (++i >= local.Length - 1 || local[i] < 32 || local[i] > 126) return "bad quoted pair in local part";
                }
                else if (c == '"' || c < 32 || c == 127 || (c > 127 && !allowUtf8)) return "bad character in quoted local part";
            }
            return null;
        }
        foreach (var atom in local.Split('.'))
        {
            if (atom.Length == 0) return "empty atom in local part (leading, trailing or double dot)";
            foreach (char c in atom)
                if (!IsAtext(c, allowUtf8)) return $"character '{c}' is not allowed in a local part";
        }
        return null;
    }

    private static bool IsAtext(char c, bool allowUtf8) =>
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        "!#$%&'*+-/=?^_`{|}~".Contains(c) || (c > 127 && allowUtf8 && !char.IsControl(c) && !char.IsWhiteSpace(c));

    private static string? CheckDomain(string domain, bool allowUtf8)
    {
        if (domain.Length == 0) return "empty domain";
        if (domain[0] == '[')
        {
            if (domain[^1] != ']') return "unterminated address literal";
            string literal = domain[1..^1];
            if (literal.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
                return IPAddress.TryParse(literal[5..], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? null : "bad IPv6 address literal";
            var parts = literal.Split('.');
            return parts.Length == 4 && parts.All(p => byte.TryParse(p, out _) && p.Length <= 3) ? null : "bad IPv4 address literal";
        }
        if (System.Text.Encoding.UTF8.GetByteCount(domain) > MaxDomain) return "domain longer than 255 octets";
        foreach (var label in domain.Split('.'))
        {
            if (label.Length == 0) return "empty label in domain";
            if (label.Length > 63) return "domain label longer than 63 characters";
            if (label[0] == '-' || label[^1] == '-') return "domain label starts or ends with '-'";
            foreach (char c in label)
            {
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                          (c > 127 && allowUtf8 && char.IsLetterOrDigit(c));
                if (!ok) return $"character '{c}' is not allowed in a domain";
            }
        }
        return null;
    }
}
