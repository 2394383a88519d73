using System.Text;

namespace MailOps.Core.Smtp;

/// <summary>A MAIL FROM or RCPT TO argument: the path and its ESMTP parameters.</summary>
internal sealed record PathArgument(string Mailbox, IReadOnlyList<KeyValuePair<string, string?>> Parameters);

/// <summary>
/// Parsing of command arguments (RFC 5321 4.1.1 and 4.1.2). The grammar, in short:
/// <code>
/// mail     = "MAIL FROM:" Reverse-path [SP Mail-parameters]
/// rcpt     = "RCPT TO:" ( "&lt;Postmaster@" Domain "&gt;" / "&lt;Postmaster&gt;" / Forward-path ) [SP Rcpt-parameters]
/// path     = "&lt;" [ A-d-l ":" ] Mailbox "&gt;"        ; the source route A-d-l is ignored (4.1.1.3, appendix C)
/// esmtp-param = esmtp-keyword ["=" esmtp-value]
/// </code>
/// Spaces around the colon are tolerated, as every deployed server does.
/// </summary>
internal static class SmtpCommandParser
{
    /// <summary>Splits a command line (without CRLF) into its verb (upper case) and the rest.</summary>
    public static (string Verb, string Argument) SplitVerb(string line)
    {
        int space = line.IndexOf(' ');
        string verb = space < 0 ? line : line[..space];
        string argument = space < 0 ? "" : line[(space + 1)..];
        return (verb.ToUpperInvariant(), argument);
    }

    /// <summary>Parses <c>FROM:&lt;path&gt; params</c> or <c>TO:&lt;path&gt; params</c>.</summary>
    /// <returns>Null with <paramref name="error"/> set when the syntax is wrong. A null reverse-path gives an empty mailbox.</returns>
    public static PathArgument? ParsePath(string argument, string keyword, out string? error)
    {
        error = null;
        if (!argument.StartsWith(keyword, StringComparison.OrdinalIgnoreCase))
        {
            error = $"Syntax: {keyword}<address>";
            return null;
        }
        string rest = argument[keyword.Length..].TrimStart(' ');
        if (!rest.StartsWith('<'))
        {
            error = "Syntax error: the address must be in angle brackets";
            return null;
        }
        int close = FindClosingBracket(rest);
        if (close < 0)
        {
            error = "Syntax error: missing '>'";
            return null;
        }
        string mailbox = rest[1..close];
        if (mailbox.StartsWith('@'))
        {
            // A-d-l: "@one,@two:user@domain". Accepted and ignored (RFC 5321 4.1.1.3, 3.6.1).
            int colon = mailbox.IndexOf(':');
            if (colon < 0)
            {
                error = "Syntax error in source route";
                return null;
            }
            mailbox = mailbox[(colon + 1)..];
        }
        var parameters = new List<KeyValuePair<string, string?>>();
        foreach (string item in rest[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = item.IndexOf('=');
            string key = (eq < 0 ? item : item[..eq]).ToUpperInvariant();
            string? value = eq < 0 ? null : item[(eq + 1)..];
            if (key.Length == 0 || !key.All(c => char.IsAsciiLetterOrDigit(c) || c == '-') || parameters.Any(p => p.Key == key))
            {
                error = $"Syntax error in parameter '{item}'";
                return null;
            }
            parameters.Add(new(key, value));
        }
        return new PathArgument(mailbox, parameters);
    }

    private static int FindClosingBracket(string s)
    {
        bool quoted = false;
        for (int i = 1; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '\\' && quoted) i++;
            else if (c == '"') quoted = !quoted;
            else if (c == '>' && !quoted) return i;
        }
        return -1;
    }

    /// <summary>Decodes RFC 3461 xtext ("+" followed by two upper-case hex digits encodes an octet).</summary>
    public static bool TryDecodeXtext(string text, out string value)
    {
        var bytes = new List<byte>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '+')
            {
                if (i + 2 >= text.Length || !byte.TryParse(text.AsSpan(i + 1, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte b))
                {
                    value = "";
                    return false;
                }
                bytes.Add(b);
                i += 2;
            }
            else if (c is >= '!' and <= '~' and not '=')
            {
                bytes.Add((byte)c);
            }
            else
            {
                value = "";
                return false;
            }
        }
        value = Encoding.UTF8.GetString(bytes.ToArray());
        return !value.Any(char.IsControl);
    }
}
