using System.Text;

namespace MailOps.Core.Delivery;

/// <summary>Reading the header block of a stored message (CRLF line ends, as the queue keeps it).</summary>
internal static class StoredMessage
{
    /// <summary>The longest header block looked at; our listener caps Received lines, so real ones are far smaller.</summary>
    public const int MaxHeaderBlock = 1024 * 1024;

    /// <summary>
    /// The header block from the start of <paramref name="body"/>: every octet up to and including the
    /// CRLF that ends the last header line, without the empty line after it. Null when no empty line
    /// comes within <see cref="MaxHeaderBlock"/> octets. Leaves the stream anywhere.
    /// </summary>
    public static byte[]? ReadHeaderBlock(Stream body)
    {
        if (body is MemoryStream memory && memory.TryGetBuffer(out var whole))
        {
            // Already in memory (a small message read whole): no copy but the block itself.
            var all = whole.AsSpan();
            if (all.StartsWith("\r\n"u8)) return [];
            int end = all.IndexOf("\r\n\r\n"u8);
            return end >= 0 && end + 2 <= MaxHeaderBlock ? all[..(end + 2)].ToArray() : null;
        }
        body.Position = 0;
        var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read, searchFrom = 0;
        while (buffer.Length < MaxHeaderBlock && (read = body.Read(chunk, 0, chunk.Length)) > 0)
        {
            buffer.Write(chunk, 0, read);
            var all = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
            if (all.StartsWith("\r\n"u8)) return [];
            int end = all[searchFrom..].IndexOf("\r\n\r\n"u8);
            if (end >= 0) return all[..(searchFrom + end + 2)].ToArray();
            searchFrom = Math.Max(0, all.Length - 3);
        }
        return null;
    }

    /// <summary>True when a header line <c>name: value</c> with exactly this value (case-insensitive) is in the block.</summary>
    public static bool HasHeader(byte[] headerBlock, string name, string value)
    {
        foreach (var line in Encoding.UTF8.GetString(headerBlock).Split("\r\n"))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0 || !line[..colon].Trim().Equals(name, StringComparison.OrdinalIgnoreCase)) continue;
            if (line[(colon + 1)..].Trim().Trim('<', '>').Equals(value, StringComparison.OrdinalIgnoreCase)) return true;
        }
        return false;
    }
}
