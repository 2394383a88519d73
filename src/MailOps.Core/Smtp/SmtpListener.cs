using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailOps.Core.Config;
using Microsoft.Extensions.Logging;

namespace MailOps.Core.Smtp;

/// <summary>
/// qmail-smtpd under tcpserver: accepts connections on the configured endpoints, enforces the
/// global and per-client connection caps (421 4.7.0 beyond them), and runs one
/// <see cref="SmtpSession"/> per connection. Stopping is graceful and idempotent: no new
/// connections, idle sessions get 421, a session receiving a message finishes it first.
/// </summary>
public sealed class SmtpListener : IAsyncDisposable
{
    /// <summary>What new sessions get; a reload replaces it, and sessions already running keep theirs.</summary>
    private volatile SmtpServerContext _server;
    private readonly IReadOnlyList<ListenEndpoint> _endpoints;
    private readonly List<Socket> _listeners = new();
    private readonly Dictionary<Socket, ListenerRole> _roles = new();
    /// <summary>The Listen entry each socket was bound for (port 0 stays 0 here), to compare with a reloaded configuration.</summary>
    private readonly Dictionary<Socket, ListenEndpoint> _configured = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Socket, byte> _connections = new();
    private readonly Dictionary<IPAddress, int> _perClient = new();
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private readonly List<Task> _acceptLoops = new();
    private int _active;
    private Task? _stopTask;

    public SmtpListener(SmtpServerContext server, IEnumerable<IPEndPoint>? endpoints = null)
    {
        _server = server;
        _endpoints = endpoints?.Select(e => new ListenEndpoint(e, ListenerRole.Mx)).ToList() ?? EndpointsOf(server);
    }

    /// <summary>The Listen entries of <paramref name="server"/>'s configuration, checked against what their roles need.</summary>
    /// <exception cref="ConfigException">None, or a submission port without TLS or Users.</exception>
    private static List<ListenEndpoint> EndpointsOf(SmtpServerContext server)
    {
        var endpoints = server.Config.Listen.Select(ListenEndpoint.Parse).ToList();
        if (endpoints.Count == 0) throw new ConfigException("Listen: at least one endpoint is needed.");
        if (endpoints.Any(e => e.Role != ListenerRole.Mx))
        {
            if (server.Tls is null) throw new ConfigException("Listen: a submission or submissions port needs TLS (Tls.Enabled).");
            if (!server.AuthAvailable) throw new ConfigException("Listen: a submission or submissions port needs Users to authenticate.");
        }
        return endpoints;
    }

    /// <summary>Parses <c>IP:PORT</c> or <c>[IPv6]:PORT</c> (a role after a slash is allowed); port 0 asks for any free port.</summary>
    /// <exception cref="ConfigException">Not an address with a port.</exception>
    public static IPEndPoint ParseEndpoint(string text) => ListenEndpoint.Parse(text).Endpoint;

    /// <summary>Where the listener accepts connections (with the actual port when 0 was asked for).</summary>
    public IReadOnlyList<IPEndPoint> LocalEndpoints
    {
        get { lock (_gate) return _listeners.Select(s => (IPEndPoint)s.LocalEndPoint!).ToList(); }
    }

    /// <summary><see cref="LocalEndpoints"/> with the role of each.</summary>
    public IReadOnlyList<ListenEndpoint> Listening
    {
        get { lock (_gate) return _listeners.Select(s => new ListenEndpoint((IPEndPoint)s.LocalEndPoint!, _roles[s])).ToList(); }
    }

    /// <summary>Sessions in progress.</summary>
    public int ActiveSessions => Volatile.Read(ref _active);

    /// <summary>Binds every endpoint and starts accepting.</summary>
    /// <exception cref="SmtpListenerException">An endpoint cannot be bound (in use, not an address of this machine, no permission).</exception>
    public void Start()
    {
        lock (_gate)
        {
            if (_listeners.Count > 0 || _stopTask is not null) throw new InvalidOperationException("The listener was already started.");
            foreach (var socket in Bind(_endpoints)) Accept(socket);
        }
    }

    /// <summary>Binds every endpoint, or none: on a failure those bound already are closed.</summary>
    /// <exception cref="SmtpListenerException">An endpoint cannot be bound.</exception>
    private List<Socket> Bind(IReadOnlyList<ListenEndpoint> endpoints)
    {
        var bound = new List<Socket>();
        try
        {
            foreach (var configured in endpoints)
            {
                var endpoint = configured.Endpoint;
                var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                bound.Add(socket);
                _roles[socket] = configured.Role;
                _configured[socket] = configured;
                AllowRebindAfterRestart(socket);
                if (endpoint.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = false;
                socket.Bind(endpoint);
                socket.Listen(512);
            }
            return bound;
        }
        catch (SocketException ex)
        {
            foreach (var s in bound)
            {
                s.Dispose();
                _roles.Remove(s);
                _configured.Remove(s);
            }
            throw new SmtpListenerException($"Cannot listen on {string.Join(", ", endpoints)}: {ex.Message}", ex);
        }
    }

    /// <summary>Caller holds _gate.</summary>
    private void Accept(Socket socket)
    {
        _listeners.Add(socket);
        _server.Logger.LogInformation(SmtpEvents.Listening, "Listening on {Endpoint}", new ListenEndpoint((IPEndPoint)socket.LocalEndPoint!, _roles[socket]));
        var role = _roles[socket];
        _acceptLoops.Add(Task.Run(() => AcceptLoopAsync(socket, role)));
    }

    /// <summary>
    /// A reload: new sessions get <paramref name="next"/>; Listen entries that are new are bound
    /// (all or none), and those no longer listed stop accepting (their sessions finish). Sessions
    /// already running keep the context they started with.
    /// </summary>
    /// <returns>The entries that were bound and those that were closed.</returns>
    /// <exception cref="ConfigException">The new Listen entries are invalid (nothing changed).</exception>
    /// <exception cref="SmtpListenerException">A new endpoint cannot be bound (nothing changed).</exception>
    public (IReadOnlyList<ListenEndpoint> Added, IReadOnlyList<ListenEndpoint> Removed) Reconfigure(SmtpServerContext next)
    {
        var wanted = EndpointsOf(next);
        lock (_gate)
        {
            if (_stopTask is not null) throw new InvalidOperationException("The listener is stopping.");
            var current = _listeners.Select(s => _configured[s]).ToList();
            var added = wanted.Where(w => !current.Contains(w)).Distinct().ToList();
            var closing = _listeners.Where(s => !wanted.Contains(_configured[s])).ToList();
            var bound = Bind(added);
            _server = next;
            foreach (var socket in bound) Accept(socket);
            foreach (var socket in closing)
            {
                _listeners.Remove(socket);
                socket.Dispose(); // its accept loop ends; its sessions go on
                _server.Logger.LogInformation(SmtpEvents.Listening, "Stopped listening on {Endpoint}", _configured[socket]);
            }
            return (added, closing.Select(s => _configured[s]).ToList());
        }
    }

    /// <summary>
    /// SO_REUSEADDR alone, so a restarted server can bind while old connections sit in TIME_WAIT.
    /// .NET's ReuseAddress option also sets SO_REUSEPORT on Linux, which lets a second process
    /// listen on the same port and steal half the connections: a port in use must fail to bind.
    /// </summary>
    private static void AllowRebindAfterRestart(Socket socket)
    {
        if (OperatingSystem.IsLinux()) socket.SetRawSocketOption(1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, BitConverter.GetBytes(1));
        else if (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD()) socket.SetRawSocketOption(0xffff, 0x4, BitConverter.GetBytes(1));
        // Windows: SO_REUSEADDR would allow stealing the port; its default already rebinds after TIME_WAIT.
    }

    private async Task AcceptLoopAsync(Socket listener, ListenerRole role)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || _stopping.IsCancellationRequested || !IsListening(listener))
            {
                return; // stopping, or this endpoint was closed by a reload
            }
            catch (SocketException ex)
            {
                // EMFILE, ECONNABORTED...: the listener goes on.
                _server.Logger.LogWarning(SmtpEvents.SessionError, "accept failed: {Reason}", ex.Message);
                await Task.Delay(50).ConfigureAwait(false);
                continue;
            }
            Admit(client, role);
        }
    }

    private void Admit(Socket client, ListenerRole role)
    {
        var server = _server; // a reload between here and the session must not mix two configurations
        var address = (client.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        string? refusal = null;
        lock (_gate)
        {
            _perClient.TryGetValue(address, out int fromClient);
            if (_stopTask is not null) refusal = SmtpReplies.ShuttingDown(server.Config.HostName);
            else if (_active >= server.Config.MaxConnections) refusal = SmtpReplies.TooManyConnections(server.Config.HostName);
            else if (fromClient >= server.Config.MaxConnectionsPerClient) refusal = SmtpReplies.TooManyFromYou(server.Config.HostName);
            else if (!server.Policy.IsRelayClient(address) && !server.Rates.TryCount(ClientRateLimits.Kind.Connection, address)) refusal = SmtpReplies.ConnectionRate(server.Config.HostName);
            else
            {
                _perClient[address] = fromClient + 1;
                _active++;
            }
        }
        if (refusal is not null)
        {
            server.Logger.LogInformation(SmtpEvents.Refused, "Refused {Client}: {Reply}", address, refusal);
            server.Metrics?.Rejected("CONNECT", refusal);
            _ = RefuseAsync(client, refusal);
            return;
        }
        _connections[client] = 0;
        client.NoDelay = true;
        _ = Task.Run(() => RunSessionAsync(client, address, role, server));
    }

    private static async Task RefuseAsync(Socket client, string reply)
    {
        using (client)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.SendAsync(Encoding.ASCII.GetBytes(reply + "\r\n"), SocketFlags.None, cts.Token).ConfigureAwait(false);
                client.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private async Task RunSessionAsync(Socket client, IPAddress address, ListenerRole role, SmtpServerContext server)
    {
        try
        {
            var session = new SmtpSession(server, new NetworkStream(client, ownsSocket: true), address, _stopping.Token, role);
            server.Metrics?.SessionStarted(role.ToString().ToLowerInvariant());
            await session.RunAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            server.Logger.LogError(SmtpEvents.SessionError, ex, "Session with {Client} failed", address);
        }
        finally
        {
            client.Dispose();
            _connections.TryRemove(client, out _);
            bool drained;
            lock (_gate)
            {
                if (--_perClient[address] == 0) _perClient.Remove(address);
                drained = --_active == 0 && _stopTask is not null;
            }
            if (drained) _drained.TrySetResult();
        }
    }

    /// <summary>
    /// Stops accepting, asks every session to end at its next command boundary (a message being
    /// received is finished and answered first) and waits up to <paramref name="grace"/>; sessions
    /// still running then are cut. Calling it again returns the same task.
    /// </summary>
    public Task StopAsync(TimeSpan grace)
    {
        lock (_gate)
        {
            return _stopTask ??= Task.Run(() => StopCoreAsync(grace)); // off the caller's thread and SynchronizationContext
        }
    }

    private bool IsListening(Socket socket)
    {
        lock (_gate) return _listeners.Contains(socket);
    }

    private async Task StopCoreAsync(TimeSpan grace)
    {
        _server.Logger.LogInformation(SmtpEvents.Stopping, "Stopping; {Count} sessions in progress", ActiveSessions);
        _stopping.Cancel();
        Socket[] listening;
        lock (_gate) listening = _listeners.ToArray();
        foreach (var socket in listening) socket.Dispose();
        await Task.WhenAll(_acceptLoops).ConfigureAwait(false);
        lock (_gate)
        {
            if (_active == 0) _drained.TrySetResult();
        }
        if (await Task.WhenAny(_drained.Task, Task.Delay(grace)).ConfigureAwait(false) != _drained.Task)
        {
            _server.Logger.LogWarning(SmtpEvents.Stopping, "Cutting {Count} sessions still running after {Grace}", ActiveSessions, grace);
            foreach (var socket in _connections.Keys) socket.Dispose();
            await Task.WhenAny(_drained.Task, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        _stopping.Dispose();
    }
}

/// <summary>The listener could not start.</summary>
public sealed class SmtpListenerException : Exception
{
    public SmtpListenerException(string message, Exception? inner = null) : base(message, inner) { }
}
