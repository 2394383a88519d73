using System.Net.Sockets;
using System.Runtime.Versioning;
using System.Text;
using MailOps.Core.Queue;
using MailOps.Core.Submission;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Hosting;

/// <summary>
/// The queue listing for users who may not read the queue (Postfix's showq): a Unix stream socket
/// <c>&lt;queue&gt;/showq</c> that answers the request line <c>table</c> with the table
/// <c>mailq</c> prints: ids, states, senders and recipients, never a message body. Reached
/// through the drop helper, which alone of other users' programs may enter a system queue.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed class ShowqService : IAsyncDisposable
{
    private readonly QueueStore _store;
    private readonly ILogger _log;
    private readonly Socket _socket;
    private readonly string _path;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _slots = new(4, 4);
    private readonly Task _loop;

    public ShowqService(QueueStore store, ILogger log)
    {
        _store = store;
        _log = log;
        _path = DropFile.SocketPath(store.QueuePath, "showq");
        File.Delete(_path); // left by a previous server; we hold the server lock
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _socket.Bind(new UnixDomainSocketEndPoint(_path));
        File.SetUnixFileMode(_path, (UnixFileMode)0x1b6 /* 0666: the queue directory decides who reaches it */);
        _socket.Listen(16);
        _loop = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                await _slots.WaitAsync(_stop.Token).ConfigureAwait(false);
                client = await _socket.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException) { return; }
            catch (SocketException) { _slots.Release(); continue; }
            _ = Task.Run(() => AnswerAsync(client));
        }
    }

    private async Task AnswerAsync(Socket client)
    {
        try
        {
            using (client)
            await using (var stream = new NetworkStream(client, ownsSocket: false))
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                var request = new byte[16];
                int n = 0;
                while (n < request.Length && Array.IndexOf(request, (byte)'\n', 0, n) < 0)
                {
                    int read = await stream.ReadAsync(request.AsMemory(n), timeout.Token).ConfigureAwait(false);
                    if (read == 0) break;
                    n += read;
                }
                var writer = new StreamWriter(stream, new UTF8Encoding(false)) { NewLine = "\n" };
                if (Encoding.ASCII.GetString(request, 0, n).Trim() == "table") QueueTable.Write(writer, _store.List());
                else writer.WriteLine("showq: unknown request (the only one is 'table').");
                await writer.FlushAsync(timeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or UnauthorizedAccessException)
        {
            _log.LogDebug("showq: {Error}", ex.Message);
        }
        finally
        {
            _slots.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _socket.Dispose();
        await _loop.ConfigureAwait(false);
        try { File.Delete(_path); } catch (IOException) { }
    }
}
