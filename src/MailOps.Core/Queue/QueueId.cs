using System.Security.Cryptography;

namespace MailOps.Core.Queue;

/// <summary>
/// Queue ids: 16 characters of lower-case Crockford base-32. The first 11 encode the
/// microseconds since the Unix epoch (strictly increasing within a process), the last 5 a
/// per-process random tag plus a counter, so two processes enqueuing in the same microsecond
/// still differ. Ids sort by arrival as ordinal strings and are safe as file names everywhere.
/// </summary>
public static class QueueId
{
    public const int Length = 16;
    private const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz"; // ascending ASCII: sort order is numeric order
    private static readonly object Gate = new();
    private static long _lastMicros;
    private static readonly int ProcessTag = RandomNumberGenerator.GetInt32(1 << 25);
    private static int _counter;

    public static string New() => New(DateTimeOffset.UtcNow);

    internal static string New(DateTimeOffset now)
    {
        long micros = (now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;
        int tail;
        lock (Gate)
        {
            if (micros <= _lastMicros) micros = _lastMicros + 1;
            _lastMicros = micros;
            tail = (ProcessTag + ++_counter) & ((1 << 25) - 1);
        }
        Span<char> id = stackalloc char[Length];
        Encode(micros, id[..11]);
        Encode(tail, id[11..]);
        return new string(id);
    }

    private static void Encode(long value, Span<char> into)
    {
        for (int i = into.Length - 1; i >= 0; i--)
        {
            into[i] = Alphabet[(int)(value & 31)];
            value >>= 5;
        }
    }

    /// <summary>True for strings that could be ids; everything that names a file goes through this.</summary>
    public static bool IsValid(string? id) => TryGetSortKey(id, out _);

    /// <summary>
    /// The id's 80 bits as a number, which orders ids as ordinal string comparison does (the
    /// alphabet ascends): sorting a long queue's ids by it compares numbers, not strings. False
    /// for a string that is not an id.
    /// </summary>
    public static bool TryGetSortKey(string? id, out UInt128 key)
    {
        key = 0;
        if (id is null || id.Length != Length) return false;
        foreach (char c in id)
        {
            int digit = c < 128 ? Digits[c] : -1;
            if (digit < 0) return false;
            key = (key << 5) | (uint)digit;
        }
        return true;
    }

    /// <summary>Each ASCII character's value in <see cref="Alphabet"/>, or -1.</summary>
    private static readonly sbyte[] Digits = CreateDigits();

    private static sbyte[] CreateDigits()
    {
        var digits = new sbyte[128];
        Array.Fill(digits, (sbyte)-1);
        for (int i = 0; i < Alphabet.Length; i++) digits[Alphabet[i]] = (sbyte)i;
        return digits;
    }

    /// <summary>The arrival time encoded in an id.</summary>
    public static DateTimeOffset ArrivalOf(string id)
    {
        long micros = 0;
        for (int i = 0; i < 11; i++) micros = (micros << 5) | (long)Alphabet.IndexOf(id[i]);
        return DateTimeOffset.UnixEpoch.AddTicks(micros * 10);
    }
}
