using System.Text.Json;
using System.Text.Json.Serialization;

namespace MailOps.Core.Queue;

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingDefault,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(Envelope))]
[JsonSerializable(typeof(JournalEvent))]
internal sealed partial class QueueJsonContext : JsonSerializerContext
{
}

internal static class QueueJson
{
    public static byte[] Serialize(Envelope envelope) =>
        JsonSerializer.SerializeToUtf8Bytes(envelope, QueueJsonContext.Default.Envelope);

    /// <summary>An envelope from its JSON: read by <see cref="EnvelopeReader"/>, else by System.Text.Json, whose answer or error stands.</summary>
    public static Envelope Deserialize(ReadOnlySpan<byte> json) =>
        EnvelopeReader.TryRead(json)
        ?? JsonSerializer.Deserialize(json, QueueJsonContext.Default.Envelope)
        ?? throw new InvalidDataException("empty envelope");
}

/// <summary>
/// Reads an envelope as <see cref="QueueJsonContext"/> writes it, by hand. Listings and every
/// delivery read envelopes, and System.Text.Json's general reader costs a start-up (its metadata
/// for these types: some 1,400 methods compiled) and about 1.3 KB of garbage per envelope.
/// Anything not written that way (a number for an enum, a null where a value goes, a missing
/// address, malformed JSON) makes it give up, and the general reader decides: the same answer,
/// or the same error. Every property must be read here: a test writes each one and compares.
/// </summary>
internal static class EnvelopeReader
{
    /// <summary>The envelope, or null when the general reader must decide.</summary>
    public static Envelope? TryRead(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || !Envelope(ref reader, out var envelope)) return null;
            return reader.Read() ? null : envelope; // anything after the object: not ours to judge
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static bool Envelope(ref Utf8JsonReader r, out Envelope envelope)
    {
        var e = envelope = new Envelope();
        if (r.TokenType != JsonTokenType.StartObject) return false;
        while (r.Read())
        {
            if (r.TokenType == JsonTokenType.EndObject) return true;
            if (r.TokenType != JsonTokenType.PropertyName) return false;
            if (r.ValueTextEquals("version"u8)) { if (!Int(ref r, out int v)) return false; e.Version = v; }
            else if (r.ValueTextEquals("id"u8)) { if (!String(ref r, out string? v) || v is null) return false; e.Id = v; }
            else if (r.ValueTextEquals("arrived"u8)) { if (!Time(ref r, out DateTimeOffset v)) return false; e.Arrived = v; }
            else if (r.ValueTextEquals("sender"u8)) { if (!String(ref r, out string? v) || v is null) return false; e.Sender = v; }
            else if (r.ValueTextEquals("recipients"u8)) { if (!Recipients(ref r, out var v)) return false; e.Recipients = v; }
            else if (r.ValueTextEquals("size"u8)) { if (!Next(ref r, JsonTokenType.Number) || !r.TryGetInt64(out long v)) return false; e.Size = v; }
            else if (r.ValueTextEquals("messageId"u8)) { if (!String(ref r, out string? v)) return false; e.MessageId = v; }
            else if (r.ValueTextEquals("subject"u8)) { if (!String(ref r, out string? v)) return false; e.Subject = v; }
            else if (r.ValueTextEquals("origin"u8)) { if (!Enum(ref r, out MessageOrigin v)) return false; e.Origin = v; }
            else if (r.ValueTextEquals("clientAddress"u8)) { if (!String(ref r, out string? v)) return false; e.ClientAddress = v; }
            else if (r.ValueTextEquals("clientHelo"u8)) { if (!String(ref r, out string? v)) return false; e.ClientHelo = v; }
            else if (r.ValueTextEquals("authenticatedUser"u8)) { if (!String(ref r, out string? v)) return false; e.AuthenticatedUser = v; }
            else if (r.ValueTextEquals("receivedTls"u8)) { if (!String(ref r, out string? v)) return false; e.ReceivedTls = v; }
            else if (r.ValueTextEquals("receiveSeconds"u8))
            {
                if (!r.Read()) return false;
                if (r.TokenType == JsonTokenType.Null) e.ReceiveSeconds = null;
                else if (r.TokenType == JsonTokenType.Number && r.TryGetDouble(out double v)) e.ReceiveSeconds = v;
                else return false;
            }
            else if (r.ValueTextEquals("envelopeId"u8)) { if (!String(ref r, out string? v)) return false; e.EnvelopeId = v; }
            else if (r.ValueTextEquals("return"u8)) { if (!Enum(ref r, out DsnReturn v)) return false; e.Return = v; }
            else if (r.ValueTextEquals("eightBit"u8)) { if (!Bool(ref r, out bool v)) return false; e.EightBit = v; }
            else if (r.ValueTextEquals("smtpUtf8"u8)) { if (!Bool(ref r, out bool v)) return false; e.SmtpUtf8 = v; }
            else if (r.ValueTextEquals("reportDue"u8)) { if (!Bool(ref r, out bool v)) return false; e.ReportDue = v; }
            else if (r.ValueTextEquals("delayWarned"u8)) { if (!Bool(ref r, out bool v)) return false; e.DelayWarned = v; }
            else r.Skip(); // not a property of ours (System.Text.Json ignores it too)
        }
        return false;
    }

    private static bool Recipients(ref Utf8JsonReader r, out List<EnvelopeRecipient> recipients)
    {
        recipients = new List<EnvelopeRecipient>(1);
        if (!Next(ref r, JsonTokenType.StartArray)) return false;
        while (r.Read())
        {
            if (r.TokenType == JsonTokenType.EndArray) return true;
            if (!Recipient(ref r, out var recipient)) return false;
            recipients.Add(recipient);
        }
        return false;
    }

    private static bool Recipient(ref Utf8JsonReader r, out EnvelopeRecipient recipient)
    {
        var p = recipient = new EnvelopeRecipient { Address = "" };
        if (r.TokenType != JsonTokenType.StartObject) return false;
        bool addressed = false;
        while (r.Read())
        {
            if (r.TokenType == JsonTokenType.EndObject) return addressed; // required: without it, the general reader's error
            if (r.TokenType != JsonTokenType.PropertyName) return false;
            if (r.ValueTextEquals("address"u8)) { if (!String(ref r, out string? v) || v is null) return false; p.Address = v; addressed = true; }
            else if (r.ValueTextEquals("state"u8)) { if (!Enum(ref r, out RecipientState v)) return false; p.State = v; }
            else if (r.ValueTextEquals("attempts"u8)) { if (!Int(ref r, out int v)) return false; p.Attempts = v; }
            else if (r.ValueTextEquals("nextAttempt"u8)) { if (!TimeOrNull(ref r, out var v)) return false; p.NextAttempt = v; }
            else if (r.ValueTextEquals("lastError"u8)) { if (!String(ref r, out string? v)) return false; p.LastError = v; }
            else if (r.ValueTextEquals("status"u8)) { if (!String(ref r, out string? v)) return false; p.Status = v; }
            else if (r.ValueTextEquals("lastReply"u8)) { if (!String(ref r, out string? v)) return false; p.LastReply = v; }
            else if (r.ValueTextEquals("remoteHost"u8)) { if (!String(ref r, out string? v)) return false; p.RemoteHost = v; }
            else if (r.ValueTextEquals("updated"u8)) { if (!TimeOrNull(ref r, out var v)) return false; p.Updated = v; }
            else if (r.ValueTextEquals("originalRecipient"u8)) { if (!String(ref r, out string? v)) return false; p.OriginalRecipient = v; }
            else if (r.ValueTextEquals("notify"u8)) { if (!Notify(ref r, out DsnNotify v)) return false; p.Notify = v; }
            else r.Skip();
        }
        return false;
    }

    private static bool Next(ref Utf8JsonReader r, JsonTokenType expected) => r.Read() && r.TokenType == expected;

    private static bool Int(ref Utf8JsonReader r, out int value)
    {
        value = 0;
        return Next(ref r, JsonTokenType.Number) && r.TryGetInt32(out value);
    }

    private static bool Bool(ref Utf8JsonReader r, out bool value)
    {
        value = false;
        if (!r.Read() || r.TokenType is not (JsonTokenType.True or JsonTokenType.False)) return false;
        value = r.TokenType == JsonTokenType.True;
        return true;
    }

    /// <summary>A string or null.</summary>
    private static bool String(ref Utf8JsonReader r, out string? value)
    {
        value = null;
        if (!r.Read()) return false;
        if (r.TokenType == JsonTokenType.Null) return true;
        if (r.TokenType != JsonTokenType.String) return false;
        value = r.GetString();
        return true;
    }

    private static bool Time(ref Utf8JsonReader r, out DateTimeOffset value)
    {
        value = default;
        return Next(ref r, JsonTokenType.String) && r.TryGetDateTimeOffset(out value);
    }

    private static bool TimeOrNull(ref Utf8JsonReader r, out DateTimeOffset? value)
    {
        value = null;
        if (!r.Read()) return false;
        if (r.TokenType == JsonTokenType.Null) return true;
        if (r.TokenType != JsonTokenType.String || !r.TryGetDateTimeOffset(out var time)) return false;
        value = time;
        return true;
    }

    /// <summary>An enum by one of its names, exactly as written (numbers and other spellings: the general reader).</summary>
    private static bool Enum<T>(ref Utf8JsonReader r, out T value) where T : struct, System.Enum
    {
        value = default;
        return Next(ref r, JsonTokenType.String) && !r.ValueIsEscaped && Names<T>.TryGet(r.ValueSpan, out value);
    }

    /// <summary>NOTIFY flags as written: one name, or names joined by ", " ("Success, Failure").</summary>
    private static bool Notify(ref Utf8JsonReader r, out DsnNotify value)
    {
        value = default;
        if (!Next(ref r, JsonTokenType.String) || r.ValueIsEscaped) return false;
        var text = r.ValueSpan;
        while (true)
        {
            int comma = text.IndexOf(", "u8);
            if (!Names<DsnNotify>.TryGet(comma < 0 ? text : text[..comma], out var flag)) return false;
            value |= flag;
            if (comma < 0) return true;
            text = text[(comma + 2)..];
        }
    }

    private static class Names<T> where T : struct, System.Enum
    {
        private static readonly (byte[] Name, T Value)[] All =
            System.Enum.GetValues<T>().Select(v => (System.Text.Encoding.UTF8.GetBytes(v.ToString()), v)).ToArray();

        public static bool TryGet(ReadOnlySpan<byte> name, out T value)
        {
            foreach (var (candidate, v) in All)
            {
                if (!name.SequenceEqual(candidate)) continue;
                value = v;
                return true;
            }
            value = default;
            return false;
        }
    }
}
