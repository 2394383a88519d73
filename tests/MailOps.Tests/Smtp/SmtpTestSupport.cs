using System.Net;
using System.Net.Sockets;
using System.Text;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Smtp;

namespace MailOps.Tests.Smtp;

/// <summary>
/// A transport that hands the session the client's octets in exactly the pieces given (so a test
/// decides where the reads split) and records everything the server writes.
/// </summary>
internal sealed class ScriptedTransport : Stream
{
    private readonly Queue<byte[]> _pieces;
    private readonly MemoryStream _written = new();

    public ScriptedTransport(IEnumerable<byte[]> pieces) => _pieces = new Queue<byte[]>(pieces);

    public string Output => Encoding.UTF8.GetString(_written.ToArray());

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    private byte[]? _current;
    private int _offset;

    public override int Read(Span<byte> buffer)
    {
        if (buffer.Length == 0) return 0;
        if (_current is null || _offset == _current.Length)
        {
            if (_pieces.Count == 0) return 0; // end of input
            _current = _pieces.Dequeue();
            _offset = 0;
        }
        int n = Math.Min(_current.Length - _offset, buffer.Length);
        _current.AsSpan(_offset, n).CopyTo(buffer);
        _offset += n;
        return n;
    }
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => Task.FromResult(Read(buffer, offset, count));
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => ValueTask.FromResult(Read(buffer.Span));
    public override void Write(byte[] buffer, int offset, int count) => _written.Write(buffer, offset, count);
    public override void Write(ReadOnlySpan<byte> buffer) => _written.Write(buffer);
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default) { _written.Write(buffer.Span); return ValueTask.CompletedTask; }
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) { _written.Write(buffer, offset, count); return Task.CompletedTask; }
    public override void Flush() { }
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>A queue, a configuration and a server context for SMTP tests.</summary>
internal sealed class SmtpFixture : IDisposable
{
    public readonly TempQueue Queue = new();
    public readonly QueueStore Store;
    public readonly MailOpsConfig Config;
    public readonly SmtpServerContext Context;

    public SmtpFixture(Action<MailOpsConfig>? configure = null)
    {
        Store = Queue.Open();
        Config = new MailOpsConfig
        {
            HostName = "mx.test",
            LocalDomains = ["localhost", "self.test"],
            Mailboxes = ["alice@self.test", "bob@self.test"],
            RelayClients = [],
            Tls = new TlsSettings { Enabled = false },
            // No test DNS here: the tests that check inbound mail turn it on with their own DnsServers.
            InboundAuthentication = "Off",
        };
        configure?.Invoke(Config);
        Context = new SmtpServerContext(Config, Store);
    }

    /// <summary>Runs one session over <paramref name="pieces"/> (the client's octets, split as given) and returns what the server wrote.</summary>
    public async Task<string> RunAsync(IEnumerable<byte[]> pieces, IPAddress? client = null)
    {
        var transport = new ScriptedTransport(pieces);
        var session = new SmtpSession(Context, transport, client ?? IPAddress.Parse("192.0.2.10"), CancellationToken.None);
        var run = session.RunAsync();
        Assert.True(await Task.WhenAny(run, Task.Delay(30_000)) == run, "the session did not end");
        return transport.Output;
    }

    public Task<string> RunAsync(string input, IPAddress? client = null) => RunAsync([Encoding.UTF8.GetBytes(input)], client);

    /// <summary>The reply codes of a whole session (continuation lines of multi-line replies left out).</summary>
    public async Task<string[]> CodesAsync(string input, IPAddress? client = null) => Codes(await RunAsync(input, client));

    public static string[] Codes(string output) =>
        output.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Where(l => l.Length < 4 || l[3] != '-').Select(l => l.Length >= 3 ? l[..3] : l).ToArray();

    /// <summary>The stored body of every queued message, the Received header this server added removed.</summary>
    public IReadOnlyList<(Envelope Envelope, string Body)> Messages()
    {
        var result = new List<(Envelope, string)>();
        foreach (var mail in Store.List())
        {
            using var stream = Store.OpenBody(mail.Id);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            result.Add((Store.ReadEnvelope(mail.Id)!, StripOwnReceived(reader.ReadToEnd())));
        }
        return result;
    }

    public static string StripOwnReceived(string body)
    {
        Assert.StartsWith("Received: from ", body);
        int end = body.IndexOf("\r\n", StringComparison.Ordinal);
        while (body[end + 2] == '\t') end = body.IndexOf("\r\n", end + 2, StringComparison.Ordinal);
        return body[(end + 2)..];
    }

    public void Dispose()
    {
        Store.Dispose();
        Queue.Dispose();
    }
}

/// <summary>A line-oriented raw client on a real socket, for listener tests.</summary>
internal sealed class RawSmtpClient : IDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    /// <param name="from">The local address to connect from (another loopback address is another client).</param>
    public RawSmtpClient(IPEndPoint endpoint, IPAddress? from = null)
    {
        _tcp = from is null ? new TcpClient(endpoint.AddressFamily) : new TcpClient(new IPEndPoint(from, 0));
        _tcp.Connect(endpoint);
        _stream = _tcp.GetStream();
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public Task SendAsync(string text) => _stream.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask();
    public Task SendRawAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask();

    /// <summary>The next complete reply (all its lines), or null at end of stream.</summary>
    public async Task<string?> ReplyAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        var sb = new StringBuilder();
        while (true)
        {
            string? line = await _reader.ReadLineAsync(cts.Token);
            if (line is null) return sb.Length == 0 ? null : sb.ToString();
            sb.Append(line).Append('\n');
            if (line.Length < 4 || line[3] != '-') return sb.ToString();
        }
    }

    public void Dispose() => _tcp.Dispose();

    /// <summary>
    /// One whole transaction, pipelined: greeting, EHLO, MAIL FROM (with <paramref name="mailParameters"/>),
    /// RCPT TO, DATA, then <paramref name="message"/> dot-stuffed and ended. Returns the reply to the data.
    /// </summary>
    public static async Task<string?> SendMessageAsync(IPEndPoint endpoint, string helo, string sender, string recipient, string message, string mailParameters = "")
    {
        using var client = new RawSmtpClient(endpoint);
        await client.ReplyAsync();
        await client.SendAsync($"EHLO {helo}\r\nMAIL FROM:<{sender}>{mailParameters}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n");
        for (int i = 0; i < 4; i++) await client.ReplyAsync();
        string stuffed = string.Join("\r\n", message.Split("\r\n").Select(l => l.StartsWith('.') ? "." + l : l));
        await client.SendRawAsync(Encoding.UTF8.GetBytes(stuffed + ".\r\n"));
        return await client.ReplyAsync();
    }
}

/// <summary>A listener on a free loopback port over a fresh <see cref="SmtpFixture"/>, stopped after the test.</summary>
public abstract class ListenerTestBase : IAsyncDisposable
{
    private protected SmtpFixture? _f;
    private protected SmtpListener? _listener;

    private protected IPEndPoint Start(Action<MailOpsConfig>? configure = null)
    {
        _f = new SmtpFixture(configure);
        _listener = new SmtpListener(_f.Context, [new IPEndPoint(IPAddress.Loopback, 0)]);
        _listener.Start();
        return _listener.LocalEndpoints[0];
    }

    public async ValueTask DisposeAsync()
    {
        if (_listener is not null) await _listener.StopAsync(TimeSpan.FromSeconds(5));
        _f?.Dispose();
    }
}
