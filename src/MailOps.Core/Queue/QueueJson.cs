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

    public static Envelope Deserialize(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, QueueJsonContext.Default.Envelope)
        ?? throw new InvalidDataException("empty envelope");
}
