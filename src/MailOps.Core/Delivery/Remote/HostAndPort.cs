namespace MailOps.Core.Delivery.Remote;

/// <summary>
/// A Routes or SmartHost target: <c>host</c>, <c>host:port</c>, <c>[host]:port</c> or an address
/// literal (<c>127.0.0.2:2525</c>, <c>[::1]:25</c>). The host is looked up by address, never by MX
/// (qmail's smtproutes, Postfix's bracketed relayhost).
/// </summary>
public readonly record struct HostAndPort(string Host, int Port)
{
    public static bool TryParse(string text, int defaultPort, out HostAndPort result)
    {
        result = default;
        text = text.Trim();
        if (text.Length == 0) return false;
        string host = text;
        int port = defaultPort;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']');
            if (close < 2) return false;
            host = text[1..close];
            string rest = text[(close + 1)..];
            if (rest.Length > 0 && (!rest.StartsWith(':') || !int.TryParse(rest[1..], out port))) return false;
        }
        else if (text.Count(c => c == ':') == 1)
        {
            int colon = text.IndexOf(':');
            host = text[..colon];
            if (!int.TryParse(text[(colon + 1)..], out port)) return false;
        }
        if (port is < 1 or > 65535 || host.Length == 0) return false;
        if (!System.Net.IPAddress.TryParse(host, out _) && Uri.CheckHostName(host) != UriHostNameType.Dns) return false;
        result = new HostAndPort(host.TrimEnd('.'), port);
        return true;
    }

    public override string ToString() => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
