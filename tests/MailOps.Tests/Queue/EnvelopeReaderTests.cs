using System.Reflection;
using System.Text;
using System.Text.Json;
using MailOps.Core.Queue;

namespace MailOps.Tests.Queue;

/// <summary>
/// The hand-written envelope reader (QueueJson.cs): it must read back every property the queue
/// writes, and leave everything else to System.Text.Json, whose answer or error stands.
/// </summary>
public class EnvelopeReaderTests
{
    private static readonly DateTimeOffset Time = new(2026, 11, 28, 9, 41, 7, TimeSpan.FromHours(2));

    /// <summary>A value other than the type's default, for every type an envelope property has.</summary>
    private static object Sample(Type type, string name, int n) => (Nullable.GetUnderlyingType(type) ?? type) switch
    {
        var t when t == typeof(string) => $"{name} {n} \"quoted\" <tag> \\ ü \u2028 ✓",
        var t when t == typeof(int) => 7 + n,
        var t when t == typeof(long) => 40_980_000_000L + n,
        var t when t == typeof(double) => 1.25 + n,
        var t when t == typeof(bool) => true,
        var t when t == typeof(DateTimeOffset) => Time.AddTicks(1234567 + n),
        var t when t == typeof(DsnNotify) => DsnNotify.Success | DsnNotify.Failure | DsnNotify.Delay,
        { IsEnum: true } t => Enum.GetValues(t).Cast<object>().Last(),
        var t when t == typeof(List<EnvelopeRecipient>) => new List<EnvelopeRecipient> { Filled<EnvelopeRecipient>(1), Filled<EnvelopeRecipient>(2) },
        var t => throw new InvalidOperationException($"no sample for {t} ({name}): teach this test, and the reader, the new property"),
    };

    /// <summary>Every public settable property set to a value that is not its default (and so is written).</summary>
    private static T Filled<T>(int n) where T : class
    {
        var o = (T)System.Runtime.CompilerServices.RuntimeHelpers.GetUninitializedObject(typeof(T));
        foreach (var p in SerializedProperties(typeof(T))) p.SetValue(o, Sample(p.PropertyType, p.Name, n));
        return o;
    }

    private static IEnumerable<PropertyInfo> SerializedProperties(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetCustomAttribute<System.Text.Json.Serialization.JsonIgnoreAttribute>() is not { Condition: System.Text.Json.Serialization.JsonIgnoreCondition.Always });

    private static string General(byte[] json) => Encoding.UTF8.GetString(QueueJson.Serialize(JsonSerializer.Deserialize(json, QueueJsonContext.Default.Envelope)!));

    [Fact]
    public void Every_property_the_queue_writes_is_read_back_by_hand_as_System_Text_Json_reads_it()
    {
        var envelope = Filled<Envelope>(0);
        byte[] json = QueueJson.Serialize(envelope);
        var text = Encoding.UTF8.GetString(json);
        foreach (var type in new[] { typeof(Envelope), typeof(EnvelopeRecipient) })
            foreach (var p in SerializedProperties(type))
                Assert.Contains($"\"{JsonNamingPolicy.CamelCase.ConvertName(p.Name)}\":", text); // written, so the comparison below covers it

        var read = EnvelopeReader.TryRead(json);
        Assert.NotNull(read);
        Assert.Equal(text, Encoding.UTF8.GetString(QueueJson.Serialize(read)));
        Assert.Equal(text, General(json));
        Assert.Equal(Time.AddTicks(1234567), read.Arrived);
        Assert.Equal(TimeSpan.FromHours(2), read.Arrived.Offset);
        Assert.Equal(DsnNotify.Success | DsnNotify.Failure | DsnNotify.Delay, read.Recipients[1].Notify);

        // Defaults are not written and read back as defaults; a one-recipient envelope as the queue writes most.
        var plain = new Envelope { Id = "1k1aa59ec2d2q90t", Sender = "", Arrived = Time, Recipients = [new EnvelopeRecipient { Address = "a@example.org", Notify = DsnNotify.Never }] };
        byte[] plainJson = QueueJson.Serialize(plain);
        var plainRead = EnvelopeReader.TryRead(plainJson);
        Assert.NotNull(plainRead);
        Assert.Equal(Encoding.UTF8.GetString(plainJson), Encoding.UTF8.GetString(QueueJson.Serialize(plainRead)));
        Assert.Equal(1, plainRead.Version);
        Assert.True(plainRead.IsBounce);
    }

    public static TheoryData<string, bool> Variants => new()
    {
        // JSON the queue does not write: the hand reader takes what it can read exactly, and gives the rest up.
        { """{"id":"a","recipients":[{"address":"x@y","state":2}]}""", false },                      // an enum as a number
        { """{"id":"a","recipients":[{"address":"x@y","state":"held"}]}""", false },                 // another spelling
        { """{"id":"a","recipients":[{"address":"x@y","notify":6}]}""", false },
        { """{"id":"a","recipients":[{"address":"x@y","notify":"Success, Bogus"}]}""", false },
        { """{"id":"a","recipients":[{"state":"Held"}]}""", false },                                   // no address: required
        { """{"id":"a","sender":null,"recipients":[]}""", false },                                    // null where a string goes
        { """{"id":"a","recipients":null}""", false },
        { """{"id":"a","size":"12"}""", false },
        { """{"id":"a","arrived":"yesterday"}""", false },
        { """{"id":"a"} trailing""", false },
        { """{"id":"a",}""", false },
        { """[1]""", false },
        { """{"id":"a","recipients":[{"address":"x@y","state":"Held","future":{"deep":[1,{"x":null}]}}],"isBounce":true,"Id":"b"}""", true }, // unknown and ignored names are skipped
        { """{"\u0069d":"a","sender":"s\u00fc\n","recipients":[{"address":"x@y","notify":"Success, Delay"}],"receiveSeconds":null,"messageId":null}""", true },
        { """{"id":"a","id":"b","version":2,"receiveSeconds":0.5,"eightBit":false}""", true },         // the last of two wins, as in System.Text.Json
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void What_the_hand_reader_does_not_take_System_Text_Json_decides(string json, bool taken)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(json);
        var hand = EnvelopeReader.TryRead(bytes);
        Assert.Equal(taken, hand is not null);
        string? general = null;
        Exception? error = null;
        try { general = General(bytes); }
        catch (Exception ex) { error = ex; }
        if (hand is not null) Assert.Equal(general, Encoding.UTF8.GetString(QueueJson.Serialize(hand)));
        // Whatever the path, QueueJson.Deserialize answers as System.Text.Json does, or fails as it does.
        if (error is null) Assert.Equal(general, Encoding.UTF8.GetString(QueueJson.Serialize(QueueJson.Deserialize(bytes))));
        else Assert.Equal(error.GetType(), Record.Exception(() => QueueJson.Deserialize(bytes))?.GetType());
    }
}
