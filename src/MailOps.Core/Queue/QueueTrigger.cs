using System.IO.Pipes;
using System.Net.Sockets;
using MailOps.Core.Submission;

namespace MailOps.Core.Queue;

/// <summary>
/// The cross-process wake-up of the serving process (qmail's lock/trigger, Postfix's
/// public/pickup): a Unix datagram socket <c>&lt;queue&gt;/trigger</c>, or on Windows a named pipe
/// named after the queue path. <see cref="Pull"/> never blocks and never fails the caller.
/// </summary>
public static class QueueTrigger
{
    private static readonly byte[] Pulse = [1];
    /// <summary>A pull that also asks for destinations marked down to be retried at once (a flush).</summary>
    private static readonly byte[] FlushPulse = [2];
    private static Socket? _sender;

    /// <summary>One unbound, non-blocking datagram socket per process serves every pull.</summary>
    private static Socket Sender
    {
        get
        {
            if (Volatile.Read(ref _sender) is { } existing) return existing;
            var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
            if (Interlocked.CompareExchange(ref _sender, socket, null) is { } raced)
            {
                socket.Dispose();
                return raced;
            }
            return socket;
        }
    }

    /// <summary>Wakes whatever process serves the queue, if any.</summary>
    /// <param name="queuePath">The queue.</param>
    /// <param name="flush">Also retry destinations the server has marked down (an operator's flush).</param>
    public static void Pull(string queuePath, bool flush = false)
    {
        var pulse = flush ? FlushPulse : Pulse;
        try
        {
            if (OperatingSystem.IsWindows())
            {
                using var pipe = new NamedPipeClientStream(".", PipeName(queuePath), PipeDirection.Out);
                pipe.Connect(0);
                pipe.WriteByte(pulse[0]);
                return;
            }
            Sender.SendTo(pulse, new UnixDomainSocketEndPoint(SocketPath(queuePath)));
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException or UnauthorizedAccessException)
        {
            // Nobody is listening (no server), or its buffer is full (it is awake already).
        }
    }

    internal static string SocketPath(string queuePath) => DropFile.SocketPath(queuePath, "trigger");

    internal static string PipeName(string queuePath) => "mailops-" + DropFile.QueueHash(queuePath);
}

/// <summary>
/// The serving side of <see cref="QueueTrigger"/>. Pulls are coalesced: however many arrive
/// while the owner is busy, the next <see cref="WaitAsync"/> returns once.
/// </summary>
public sealed class QueueTriggerListener : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _signal = new(0, 1);
    private readonly Task _loop;
    private readonly Socket? _socket;
    private readonly string? _socketPath;
    private readonly string _queuePath;
    private const int FlushByte = 2;
    private readonly SemaphoreSlim _pickup = new(0, 1);

    /// <summary>Starts listening. Only the process holding the server lock should do this.</summary>
    public QueueTriggerListener(string queuePath)
    {
        _queuePath = queuePath;
        if (OperatingSystem.IsWindows())
        {
            _loop = Task.Run(PipeLoopAsync);
            return;
        }
        _socketPath = QueueTrigger.SocketPath(queuePath);
        File.Delete(_socketPath); // left by a previous server; we hold the server lock
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        _socket.Bind(new UnixDomainSocketEndPoint(_socketPath));
        // The drop helpers of other users pull it too: the queue directory (0700, or 0710 to the
        // maildrop group of a system queue) decides who reaches the socket, not its own mode.
        File.SetUnixFileMode(_socketPath, (UnixFileMode)0x1b6 /* 0666 */);
        _loop = Task.Run(SocketLoopAsync);
    }

    /// <summary>Number of pulls received (for diagnostics).</summary>
    public long Pulls => Interlocked.Read(ref _pulls);
    private long _pulls;

    /// <summary>Completes when the trigger was pulled since the last call returned.</summary>
    public Task WaitAsync(CancellationToken cancellationToken = default) => _signal.WaitAsync(cancellationToken);

    /// <summary>True once after a flush pull arrived (see <see cref="QueueTrigger.Pull"/>).</summary>
    public bool TakeFlushRequest() => Interlocked.Exchange(ref _flush, 0) == 1;
    private int _flush;

    /// <summary>Completes when a drop helper said it left a message in the maildrop since the last call returned.</summary>
    /// <returns>False when <paramref name="timeout"/> passed first.</returns>
    public Task<bool> WaitForDropAsync(TimeSpan timeout, CancellationToken cancellationToken = default) => _pickup.WaitAsync(timeout, cancellationToken);

    private void Signal(int pulse)
    {
        if (pulse == DropFile.PickupPulse)
        {
            lock (_pickup)
            {
                if (_pickup.CurrentCount == 0) _pickup.Release();
            }
            return;
        }
        if (pulse == FlushByte) Volatile.Write(ref _flush, 1);
        Interlocked.Increment(ref _pulls);
        lock (_signal)
        {
            if (_signal.CurrentCount == 0) _signal.Release();
        }
    }

    private async Task SocketLoopAsync()
    {
        var buffer = new byte[64];
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                int n = await _socket!.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                Signal(n > 0 ? buffer[0] : 1);
            }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { await Task.Delay(100).ConfigureAwait(false); }
        }
    }

    private async Task PipeLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await using var server = new NamedPipeServerStream(QueueTrigger.PipeName(_queuePath), PipeDirection.In,
                    NamedPipeServerStream.MaxAllowedServerInstances, PipeTransmissionMode.Byte, PipeOptions.Asynchronous);
                await server.WaitForConnectionAsync(_stop.Token).ConfigureAwait(false);
                Signal(server.ReadByte());
            }
            catch (OperationCanceledException) { return; }
            catch (IOException) { await Task.Delay(100).ConfigureAwait(false); }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _socket?.Dispose();
        try { await _loop.ConfigureAwait(false); } catch (OperationCanceledException) { }
        if (_socketPath is not null) try { File.Delete(_socketPath); } catch (IOException) { }
        _stop.Dispose();
    }
}
