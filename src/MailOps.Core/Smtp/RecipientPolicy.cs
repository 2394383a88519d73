using System.Net;
using MailOps.Core.Addressing;
using MailOps.Core.Config;
using MailOps.Core.Local;

namespace MailOps.Core.Smtp;

/// <summary>The verdict on one RCPT.</summary>
internal enum RecipientVerdict
{
    Accept,
    /// <summary>A local or virtual domain without that mailbox: 550 5.1.1.</summary>
    UnknownUser,
    /// <summary>Not ours and the client may not relay: 554 5.7.1.</summary>
    RelayDenied,
    /// <summary>A local or virtual domain, and a local part that cannot name a Maildir (<c>a/b</c>, <c>..x</c>): 550 5.1.3.</summary>
    BadMailboxName,
}

/// <summary>
/// Relay control and local mailbox existence (docs/configuration.md and docs/smtp.md; qmail's rcpthosts, RELAYCLIENT and
/// users/assign). A domain is ours when it is in LocalDomains or VirtualDomains; RelayDomains are
/// accepted from anyone and relayed; anything else only from RelayClients or after AUTH.
/// </summary>
internal sealed class RecipientPolicy
{
    private readonly LocalMailboxes _mailboxes;
    private readonly HashSet<string> _relay;
    private readonly IPNetwork[] _relayClients;

    public RecipientPolicy(MailOpsConfig config)
    {
        _mailboxes = new LocalMailboxes(config);
        _relay = new(config.RelayDomains, StringComparer.OrdinalIgnoreCase);
        // Validated with the configuration (MailOpsConfig.Validate), so every entry parses.
        _relayClients = config.RelayClients.Select(c => MailOpsConfig.TryParseNetwork(c, out var n) ? n : throw new ConfigException($"RelayClients: '{c}'")).ToArray();
    }

    /// <summary>True when the domain's mail is delivered here (local or virtual).</summary>
    public bool IsOurs(string domain) => _mailboxes.IsOurs(domain);

    /// <summary>True when <paramref name="client"/> is in RelayClients.</summary>
    public bool IsRelayClient(IPAddress? client)
    {
        if (client is null) return false;
        if (client.IsIPv4MappedToIPv6) client = client.MapToIPv4();
        foreach (var network in _relayClients)
            if (network.Contains(client)) return true;
        return false;
    }

    public RecipientVerdict Judge(EnvelopeAddress recipient, bool mayRelay)
    {
        string domain = recipient.Domain;
        if (IsOurs(domain))
        {
            // "u%dest@self", "dest!u@self" and "\"u@dest\"@self" ask us to route onwards: that is
            // relaying, whatever the domain says (docs/smtp.md; qmail's percenthack is off).
            if (!mayRelay && recipient.LocalPart.AsSpan().IndexOfAny('%', '!', '@') >= 0) return RecipientVerdict.RelayDenied;
            // Refused now rather than accepted and bounced to a sender who may be forged (backscatter).
            if (!LocalMailboxes.IsSafeName(recipient.LocalPart)) return RecipientVerdict.BadMailboxName;
            // An unknown local user is refused now, never bounced later (docs/delivery.md).
            return _mailboxes.Exists(recipient) ? RecipientVerdict.Accept : RecipientVerdict.UnknownUser;
        }
        if (_relay.Contains(domain) || mayRelay) return RecipientVerdict.Accept;
        return RecipientVerdict.RelayDenied;
    }
}
