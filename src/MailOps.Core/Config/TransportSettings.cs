using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MailOps.Core.Config;

/// <summary>How a transport protects the connection (docs/configuration.md, "Transports").</summary>
public enum TransportTls
{
    /// <summary>STARTTLS when offered, any certificate; a failed handshake is retried in clear (Postfix's "may").</summary>
    Opportunistic,
    /// <summary>STARTTLS or nothing: the certificate must verify (system roots and TlsTrustAnchors) for the host's name; never clear text.</summary>
    Required,
    /// <summary>TLS from the first byte (port 465, RFC 8314), verified as Required.</summary>
    Implicit,
    /// <summary>Never TLS.</summary>
    None,
    /// <summary>STARTTLS or nothing, any certificate (Postfix's "encrypt"): against a passive eavesdropper, not an active attacker.</summary>
    Encrypted,
    /// <summary>STARTTLS, and the certificate must match the host's DNSSEC-validated TLSA records (RFC 7672); without them the mail waits (Postfix's "dane-only").</summary>
    Dane,
}

/// <summary>How a transport authenticates with its credential.</summary>
public enum TransportAuth
{
    /// <summary>A password: AUTH PLAIN, LOGIN or SCRAM, as the relay offers.</summary>
    Password,
    /// <summary>An OAuth 2 access token (Gmail, Microsoft 365): AUTH XOAUTH2. The CredentialsFile is read again at every connection, so the program that refreshes the token can rewrite it.</summary>
    XOAuth2,
}

/// <summary>
/// Where Routes and SmartHost send mail: today's <c>"host[:port]"</c> string, or an object with
/// the host, port, TLS mode, credentials (from a 0600 file, never in the configuration itself),
/// HELO name, source address and a connection limit.
/// </summary>
[JsonConverter(typeof(TransportSettingsConverter))]
public sealed class TransportSettings
{
    /// <summary>host, host:port, [host]:port or an address literal.</summary>
    public string Host { get; set; } = "";
    /// <summary>Overrides a port in <see cref="Host"/>; else RemotePort (465 when Tls is Implicit).</summary>
    public int? Port { get; set; }
    public TransportTls Tls { get; set; } = TransportTls.Opportunistic;
    /// <summary>A file holding <c>user:password</c> on its first line, readable by its owner only (Postfix's sasl_passwd).</summary>
    public string? CredentialsFile { get; set; }
    /// <summary>Password (PLAIN, LOGIN, SCRAM) or XOAuth2 (the file holds user:access-token).</summary>
    public TransportAuth Auth { get; set; } = TransportAuth.Password;
    /// <summary>The name this server gives in EHLO to this transport; HostName when null.</summary>
    public string? HeloName { get; set; }
    /// <summary>The local address connections to this transport come from.</summary>
    public string? SourceAddress { get; set; }
    /// <summary>Connections open to this transport at most; ConcurrencyPerDomainMax when null.</summary>
    public int? MaxConnections { get; set; }

    /// <summary>The credential, from <see cref="CredentialsFile"/> or given in code (Start-MailServer -SmartHostCredential). Never serialised.</summary>
    [JsonIgnore] public NetworkCredential? Credential { get; set; }

    public static implicit operator TransportSettings(string hostAndPort) => new() { Host = hostAndPort };

    /// <summary>The host and port, with the port this transport's settings give.</summary>
    public bool TryGetEndpoint(int remotePort, out Delivery.Remote.HostAndPort endpoint)
    {
        int defaultPort = Port ?? (Tls == TransportTls.Implicit ? 465 : remotePort);
        if (!Delivery.Remote.HostAndPort.TryParse(Host, defaultPort, out endpoint)) return false;
        if (Port is { } port) endpoint = endpoint with { Port = port };
        return true;
    }

    /// <summary>Checks the settings and reads the credentials file.</summary>
    /// <returns>Null, or what is wrong.</returns>
    internal string? Check(int remotePort)
    {
        if (!TryGetEndpoint(remotePort, out _)) return $"'{Host}' is not host[:port]";
        if (Port is < 1 or > 65535) return "Port must be 1-65535";
        if (MaxConnections is < 1) return "MaxConnections must be positive";
        if (SourceAddress is not null && !IPAddress.TryParse(SourceAddress, out _)) return $"SourceAddress '{SourceAddress}' is not an IP address";
        if (CredentialsFile is null)
            return Credential is not null && Tls == TransportTls.None ? "credentials are sent over TLS only, and Tls is None"
                : Auth == TransportAuth.XOAuth2 && Credential is null ? "Auth XOAuth2 needs a CredentialsFile holding user:access-token"
                : null;
        if (Tls == TransportTls.None) return "credentials are sent over TLS only, and Tls is None";
        var (credential, error) = ReadCredentialsFile();
        Credential = credential ?? Credential;
        return error;
    }

    /// <summary>The credential in <see cref="CredentialsFile"/> (checked to be private), or why it cannot be had.</summary>
    internal (NetworkCredential? Credential, string? Error) ReadCredentialsFile()
    {
        if (CredentialsFile is null) return (null, null);
        try
        {
            if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(CredentialsFile) & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.GroupWrite)) != 0)
                return (null, $"CredentialsFile {CredentialsFile} may be read or changed by others: chmod 600 {CredentialsFile}");
            string line = File.ReadLines(CredentialsFile).FirstOrDefault()?.Trim() ?? "";
            int colon = line.IndexOf(':');
            if (colon <= 0) return (null, $"CredentialsFile {CredentialsFile} must hold user:{(Auth == TransportAuth.XOAuth2 ? "access-token" : "password")} on its first line");
            return (new NetworkCredential(line[..colon], line[(colon + 1)..]), null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, $"cannot read CredentialsFile {CredentialsFile}: {ex.Message}");
        }
    }

    /// <summary>What groups deliveries and limits connections: the endpoint and how it is reached, never the secret.</summary>
    public override string ToString() => Tls == TransportTls.Opportunistic && Port is null && Credential is null && CredentialsFile is null ? Host : $"{Host}{(Port is { } p ? ":" + p : "")} ({Tls}{(Credential is not null || CredentialsFile is not null ? ", AUTH" : "")})";
}

/// <summary>A transport is a string or an object; unknown keys in the object are errors, as everywhere in the configuration.</summary>
internal sealed class TransportSettingsConverter : JsonConverter<TransportSettings>
{
    public override TransportSettings Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String) return new TransportSettings { Host = reader.GetString()! };
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("a transport is \"host[:port]\" or an object with Host, Port, Tls, CredentialsFile, Auth, HeloName, SourceAddress, MaxConnections");
        using var document = JsonDocument.ParseValue(ref reader);
        var t = new TransportSettings();
        foreach (var p in document.RootElement.EnumerateObject())
        {
            switch (p.Name.ToLowerInvariant())
            {
                case "host": t.Host = p.Value.GetString() ?? ""; break;
                case "port": t.Port = p.Value.GetInt32(); break;
                case "tls":
                    if (!Enum.TryParse<TransportTls>(p.Value.GetString(), ignoreCase: true, out var tls) || !Enum.IsDefined(tls))
                        throw new JsonException($"Tls must be one of {string.Join(", ", Enum.GetNames<TransportTls>())}");
                    t.Tls = tls;
                    break;
                case "credentialsfile": t.CredentialsFile = p.Value.GetString(); break;
                case "auth":
                    if (!Enum.TryParse<TransportAuth>(p.Value.GetString(), ignoreCase: true, out var auth) || !Enum.IsDefined(auth))
                        throw new JsonException($"Auth must be one of {string.Join(", ", Enum.GetNames<TransportAuth>())}");
                    t.Auth = auth;
                    break;
                case "helo": case "heloname": t.HeloName = p.Value.GetString(); break;
                case "sourceaddress": t.SourceAddress = p.Value.GetString(); break;
                case "maxconnections": t.MaxConnections = p.Value.GetInt32(); break;
                case "password": case "username": case "user":
                    throw new JsonException($"'{p.Name}': credentials never sit in the configuration; put user:password in a file readable by its owner only and name it in CredentialsFile");
                default: throw new JsonException($"unknown key '{p.Name}' in a transport (Host, Port, Tls, CredentialsFile, Auth, HeloName, SourceAddress, MaxConnections)");
            }
        }
        return t;
    }

    public override void Write(Utf8JsonWriter writer, TransportSettings value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteString("Host", value.Host);
        if (value.Port is { } port) writer.WriteNumber("Port", port);
        writer.WriteString("Tls", value.Tls.ToString());
        if (value.CredentialsFile is not null) writer.WriteString("CredentialsFile", value.CredentialsFile);
        if (value.Auth != TransportAuth.Password) writer.WriteString("Auth", value.Auth.ToString());
        if (value.HeloName is not null) writer.WriteString("HeloName", value.HeloName);
        if (value.SourceAddress is not null) writer.WriteString("SourceAddress", value.SourceAddress);
        if (value.MaxConnections is { } max) writer.WriteNumber("MaxConnections", max);
        writer.WriteEndObject();
    }
}
