using System.Text;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Smtp;

/// <summary>
/// AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN against the configuration's Users: the
/// mechanism's exchange over the connection, the salted-hash check (<see cref="AuthGuard"/> bounds
/// how many run at once), and the failure delay and per-client lockout of the core issue. The
/// password is never logged; the name is.
/// </summary>
internal sealed class SmtpAuthenticator(SmtpServerContext server, SmtpConnection connection)
{
    private const int MaxAuthLine = 12288; // RFC 4954 4

    private string Host => server.Config.HostName;

    /// <summary>Runs one AUTH command; the account's name when it succeeded, else null (the reply is sent either way).</summary>
    public async Task<string?> AuthenticateAsync(string argument)
    {
        if (server.Auth.IsLockedOut(connection.ClientAddress)) throw new SmtpSessionEnd(SmtpReplies.TooManyAuthFailures(Host));
        var parts = argument.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 0 or > 2) { connection.Reply(SmtpReplies.Syntax("Syntax: AUTH mechanism [initial-response]")); return null; }
        string mechanism = parts[0].ToUpperInvariant();
        string? initial = parts.Length == 2 ? parts[1] : null;

        string? name, password;
        if (mechanism == "PLAIN")
        {
            // RFC 4616: authzid NUL authcid NUL passwd. "=" is an empty initial response.
            byte[]? response = initial is null ? await ChallengeAsync("").ConfigureAwait(false) : initial == "=" ? [] : Decode(initial);
            if (response is null) return null;
            var fields = Encoding.UTF8.GetString(response).Split('\0');
            if (fields.Length != 3) { connection.Reply(SmtpReplies.AuthFailed); return null; }
            if (fields[0].Length > 0 && fields[0] != fields[1]) { connection.Reply(SmtpReplies.AuthFailed); return null; } // no proxy authorization
            (name, password) = (fields[1], fields[2]);
        }
        else if (mechanism == "LOGIN")
        {
            byte[]? user = initial is null ? await ChallengeAsync("VXNlcm5hbWU6").ConfigureAwait(false) : Decode(initial);
            if (user is null) return null;
            byte[]? pass = await ChallengeAsync("UGFzc3dvcmQ6").ConfigureAwait(false);
            if (pass is null) return null;
            (name, password) = (Encoding.UTF8.GetString(user), Encoding.UTF8.GetString(pass));
        }
        else
        {
            connection.Reply(SmtpReplies.NoSuchMechanism);
            return null;
        }

        var account = server.Config.Users.FirstOrDefault(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));
        bool? ok = await connection.WithinIdleTimeoutAsync(token => server.Auth.VerifyAsync(password, account?.PasswordHash, token)).ConfigureAwait(false);
        if (ok is null) { connection.Reply(SmtpReplies.AuthTemporaryFailure); return null; } // every verification slot stayed busy
        if (ok == false)
        {
            server.Logger.LogWarning(SmtpEvents.AuthFailure, "AUTH {Mechanism} failed for {User} from {Client}", mechanism, name, connection.ClientAddress);
            bool lockedOut = server.Auth.RecordFailure(connection.ClientAddress);
            await Task.Delay(server.Auth.FailureDelay).ConfigureAwait(false);
            if (lockedOut)
            {
                server.Logger.LogWarning(SmtpEvents.AuthLockout, "{Client} failed AUTH {Limit} times within {Window}; refused until then", connection.ClientAddress, server.Config.AuthFailureLimit, server.Config.AuthFailureWindow);
                throw new SmtpSessionEnd(SmtpReplies.TooManyAuthFailures(Host));
            }
            connection.Reply(SmtpReplies.AuthFailed);
            return null;
        }
        connection.Reply(SmtpReplies.AuthOk);
        return account!.Name;

        byte[]? Decode(string base64)
        {
            try { return Convert.FromBase64String(base64); }
            catch (FormatException) { connection.Reply(SmtpReplies.AuthBadEncoding); return null; }
        }

        async Task<byte[]?> ChallengeAsync(string challenge)
        {
            connection.Reply(challenge.Length == 0 ? "334 " : "334 " + challenge);
            var line = await connection.ReadLineAsync(MaxAuthLine).ConfigureAwait(false);
            if (line.EndOfInput) throw new SmtpSessionEnd(null);
            if (line.Error is not null) { connection.Reply(line.Error); return null; }
            if (line.Text == "*") { connection.Reply(SmtpReplies.AuthCancelled); return null; }
            return Decode(line.Text!);
        }
    }
}
