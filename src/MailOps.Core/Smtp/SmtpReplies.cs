using System.Net;
namespace MailOps.Core.Smtp;

/// <summary>
/// Every reply the listener gives, by name (qmail's err_* style), with its RFC 3463 enhanced code.
/// 4xx are temporary (the client retries), 5xx permanent.
/// </summary>
internal static class SmtpReplies
{
    public static string Greeting(string host) => $"220 {host} ESMTP MailOps";
    public static string Bye(string host) => $"221 2.0.0 {host} closing connection";
    public const string Ok = "250 2.0.0 Ok";
    public const string SenderOk = "250 2.1.0 Ok";
    public const string RecipientOk = "250 2.1.5 Ok";
    public static string Queued(string id) => $"250 2.0.0 Ok: queued as {id}";
    public static string ChunkOk(long octets) => $"250 2.0.0 {octets} octets received";
    public const string StartData = "354 End data with <CR><LF>.<CR><LF>";
    public const string ReadyForTls = "220 2.0.0 Ready to start TLS";
    public const string AuthOk = "235 2.7.0 Authentication successful";
    public const string CannotVrfy = "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery";
    public const string Help = "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH";

    // 4xx: try again later.
    public static string ShuttingDown(string host) => $"421 4.3.2 {host} Service shutting down, closing connection";
    public static string TooManyConnections(string host) => $"421 4.7.0 {host} Too many connections, try again later";
    public static string ConnectionRate(string host) => $"421 4.7.0 {host} Too many connections from your address in the last minute, try again later";
    public static string Blocklisted(IPAddress? client, IEnumerable<string> zones) => $"554 5.7.1 Service unavailable; client [{client}] blocked using {string.Join(", ", zones)}";
    public static string Greylisted(string recipient) => $"450 4.7.1 <{recipient}>: Recipient address rejected: greylisted, try again later";
    public const string MessageRate = "450 4.7.1 Too many messages from your address in the last minute, try again later";
    public const string RecipientRate = "452 4.7.1 Too many recipients from your address in the last minute, try again later";
    public static string TooManyFromYou(string host) => $"421 4.7.0 {host} Too many connections from your address, try again later";
    public static string Timeout(string host) => $"421 4.4.2 {host} Timeout exceeded, closing connection";
    public static string TooSlow(string host) => $"421 4.4.2 {host} Data transfer too slow, closing connection";
    public static string TooManyErrors(string host) => $"421 4.7.0 {host} Too many errors, closing connection";
    public static string TlsUnavailable(string host) => $"454 4.7.0 {host} TLS not available";
    public const string QueueTemporaryFailure = "451 4.3.0 Temporary queue failure, try again later";
    /// <summary>RFC 3463 4.3.1: the queue's disk is full.</summary>
    public const string InsufficientStorage = "452 4.3.1 Insufficient system storage, try again later";
    public const string InternalError = "451 4.3.0 Internal error, try again later";
    public const string TooManyRecipients = "452 4.5.3 Too many recipients";

    // 5xx: permanent.
    public const string LineTooLong = "500 5.5.2 Line too long (the limit is 512 octets)";
    public const string BareNewlineInCommand = "500 5.5.2 Syntax error: bare <CR> or <LF> (lines end with <CR><LF>)";
    public const string Unrecognized = "500 5.5.2 Command unrecognized";
    public const string InvalidUtf8 = "500 5.5.2 Command is not valid UTF-8";
    public static string BareNewlineInData(string host) => $"521 5.5.2 {host} Error: bare <CR> or <LF> in message, closing connection";
    public const string NoExpn = "502 5.5.1 EXPN not available";
    public const string HeloFirst = "503 5.5.1 Send HELO/EHLO first";
    public const string MailFirst = "503 5.5.1 Need MAIL before RCPT";
    public const string NestedMail = "503 5.5.1 Sender already specified";
    public const string NeedRecipients = "503 5.5.1 Need RCPT before DATA";
    public const string NoValidRecipients = "554 5.5.1 No valid recipients";
    public const string NotAfterBdat = "503 5.5.1 DATA cannot follow BDAT; send RSET";
    public const string AlreadyTls = "503 5.5.1 TLS already active";
    public const string AlreadyAuthenticated = "503 5.5.1 Already authenticated";
    public const string NotInTransaction = "503 5.5.1 Not allowed during a mail transaction";
    public const string BdatAfterFailure = "503 5.5.1 Earlier chunk failed; chunk discarded, send RSET";
    public static string Syntax(string detail) => $"501 5.5.4 {detail}";
    public static string BadAddress(string detail) => $"553 5.1.3 Bad address syntax: {detail}";
    public const string NeedSmtpUtf8 = "553 5.6.7 Non-ASCII address needs SMTPUTF8";
    public static string UnsupportedParameter(string name) => $"555 5.5.4 Unsupported parameter {name}";
    public const string NoSuchMechanism = "504 5.5.4 Unrecognized authentication mechanism";
    public const string AuthCancelled = "501 5.7.0 Authentication cancelled";
    public const string AuthBadEncoding = "501 5.5.2 Cannot decode the authentication response";
    public const string AuthFailed = "535 5.7.8 Authentication credentials invalid";
    /// <summary>RFC 4954 6: the check could not be made now.</summary>
    public const string AuthTemporaryFailure = "454 4.7.0 Temporary authentication failure, try again later";
    public static string TooManyAuthFailures(string host) => $"421 4.7.0 {host} Too many failed authentications from your address, try again later";
    /// <summary>RFC 3463 5.1.3: a local part that cannot name a mailbox here (a path separator, a leading dot).</summary>
    public static string BadMailboxName(string address) => $"550 5.1.3 <{address}>: Recipient address rejected: local part cannot name a mailbox";
    public const string EncryptionRequired = "538 5.7.11 Encryption required for requested authentication mechanism";
    public const string StartTlsFirst = "530 5.7.0 Must issue a STARTTLS command first";
    public const string AuthRequired = "530 5.7.0 Authentication required";
    public static string SenderNotOwned(string address, string user) => $"553 5.7.1 <{address}>: Sender address rejected: not owned by user {user}";
    public static string FromNotOwned(string address, string user) => $"553 5.7.1 From: <{address}> is not an address of user {user}";
    public static string UnknownUser(string address) => $"550 5.1.1 <{address}>: Recipient address rejected: user unknown";
    public static string RelayDenied(string address) => $"554 5.7.1 <{address}>: Relay access denied";
    public const string MessageTooBig = "552 5.3.4 Message size exceeds the fixed maximum message size";
    public const string TextLineTooLong = "554 5.6.0 Message refused: a line is longer than 1000 octets";
    public const string NoFinalNewline = "554 5.6.0 Message refused: the last chunk does not end with <CR><LF>";
    public const string BareNewlineInChunk = "554 5.6.0 Message refused: bare <CR> or <LF> (lines end with <CR><LF>)";
    public const string TooManyHops = "554 5.4.6 Too many hops (more than 100 Received headers): mail loop?";
}
