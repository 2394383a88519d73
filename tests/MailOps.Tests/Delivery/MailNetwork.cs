using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DnsClient;
using MailOps.Core.Config;
using MailOps.Core.Delivery;
using MailOps.Core.Queue;
using MailOps.Core.Smtp;
using MailOps.Tests.Smtp;

namespace MailOps.Tests.Delivery;

/// <summary>
/// A small mail network on loopback for delivery tests: dnsmasq on 127.0.0.1:&lt;random&gt; serving
/// MX and A records of *.test domains (authoritative for .test, so unknown names are NXDOMAIN),
/// and receivers on 127.0.0.2, .3, ... all on one random port (RemotePort): Postfix's smtp-sink,
/// MailOps listeners with their own queues, or a raw socket that greets as told.
/// Every process is started under timeout(1) and killed on dispose.
/// </summary>
internal sealed class MailNetwork : IAsyncDisposable
{
    private readonly List<Process> _processes = new();
    private readonly List<IAsyncDisposable> _disposables = new();
    private readonly List<IDisposable> _owned = new();

    public MailNetwork()
    {
        Port = FreePortOnAll(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]);
        Sender = new TempQueue();
        _owned.Add(Sender);
    }

    /// <summary>The port every receiver listens on (the sender's RemotePort).</summary>
    public int Port { get; }
    public int DnsPort { get; private set; }
    public TempQueue Sender { get; }

    /// <summary>The sending side's configuration: our DNS, RemotePort, fast retries.</summary>
    public MailOpsConfig SenderConfig(Action<MailOpsConfig>? configure = null)
    {
        var config = new MailOpsConfig
        {
            HostName = "sender.test",
            LocalDomains = ["sender.test"],
            Mailboxes = ["*@sender.test"],
            RemotePort = Port,
            DnsServers = [$"127.0.0.1:{DnsPort}"],
            Listen = ["127.0.0.1:1"],
            RetrySchedule = ["1s"],
            MaildirRoot = Path.Combine(Sender.Root, "maildir"),
            Tls = new TlsSettings { Enabled = false },
        };
        configure?.Invoke(config);
        config.Validate();
        return config;
    }

    /// <summary>Starts dnsmasq with dnsmasq options such as <c>--mx-host=a.test,mx.a.test,10</c>.</summary>
    public async Task StartDnsAsync(params string[] records)
    {
        DnsPort = FreePortOnAll(["127.0.0.1"], udp: true);
        // Not --no-daemon: in that debug mode dnsmasq answers TCP in its main process, and one idle
        // TCP client (rspamd keeps one open) stalls every query after it.
        var args = new List<string>
        {
            "120", Peers.Require("dnsmasq"), "--keep-in-foreground", "--no-resolv", "--no-hosts", "--log-facility=-",
            "--local=/test/", $"--port={DnsPort}", "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
        };
        args.AddRange(records);
        Start("timeout", args);
        var client = MailOps.Core.Dns.DnsEndpoint.CreateClient([$"127.0.0.1:{DnsPort}"]);
        for (int i = 0; i < 100; i++)
        {
            try
            {
                var answer = await client.QueryAsync("probe.test", QueryType.A);
                if (answer.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain) return;
            }
            catch (DnsResponseException) { }
            await Task.Delay(50);
        }
        throw new InvalidOperationException("dnsmasq did not start");
    }

    /// <summary>Postfix's smtp-sink on <paramref name="ip"/>:Port; extra options such as <c>-r rcpt</c> go before the address.</summary>
    public SinkProcess StartSink(string ip, params string[] options)
    {
        var args = new List<string> { "120", Peers.Require("smtp-sink"), "-c", "-u", "nobody" };
        args.AddRange(options);
        args.Add($"{ip}:{Port}");
        args.Add("100");
        var p = Start("timeout", args);
        var sink = new SinkProcess(p);
        WaitForPort(ip, Port);
        return sink;
    }

    /// <summary>A MailOps listener on <paramref name="ip"/>:Port with its own queue, accepting mail for <c>*.test</c> from anyone.</summary>
    public async Task<Receiver> StartReceiverAsync(string ip, Action<MailOpsConfig>? configure = null)
    {
        var queue = new TempQueue();
        _owned.Add(queue);
        var store = queue.Open();
        _owned.Add(store);
        var config = new MailOpsConfig
        {
            HostName = "receiver-" + ip,
            LocalDomains = [],
            RelayDomains = [],
            RelayClients = ["127.0.0.0/8"],
            Listen = [$"{ip}:{Port}"],
            Tls = new TlsSettings { Enabled = false },
            HoldIncoming = true,
        };
        configure?.Invoke(config);
        var listener = new SmtpListener(new SmtpServerContext(config, store));
        listener.Start();
        _disposables.Add(listener);
        await Task.CompletedTask;
        return new Receiver(listener, store);
    }

    /// <summary>A socket on <paramref name="ip"/>:Port that greets every connection with <paramref name="greeting"/> and closes; counts connections.</summary>
    public Greeter StartGreeter(string ip, string greeting)
    {
        var greeter = new Greeter(new IPEndPoint(IPAddress.Parse(ip), Port), greeting);
        _disposables.Add(greeter);
        return greeter;
    }

    public QueueStore OpenSenderStore() => Track(Sender.Open());

    private T Track<T>(T disposable) where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    /// <summary>Queues a message on the sending side.</summary>
    public static async Task<string> EnqueueAsync(QueueStore store, string sender, string[] recipients, string body = "Subject: test\r\nMessage-ID: <t@sender.test>\r\n\r\nhello\r\n")
    {
        var envelope = new Envelope
        {
            Arrived = DateTimeOffset.UtcNow,
            Sender = sender,
            Recipients = recipients.Select(r => new EnvelopeRecipient { Address = r }).ToList(),
            Origin = MessageOrigin.Submit,
        };
        return await store.EnqueueAsync(envelope, new MemoryStream(Encoding.UTF8.GetBytes(body)));
    }

    /// <summary>The TLS the delivery attempt of <paramref name="id"/> used, as its trace records it ("(no TLS)" when none).</summary>
    public static string DeliveredTls(QueueStore store, string id) =>
        store.ReadJournal(id).Single(e => e.Event == JournalEventType.Attempt && e.Recipient is not null).Tls ?? "(no TLS)";

    /// <summary>One delivery pass over the sender's queue.</summary>
    public static async Task PassAsync(MailOpsConfig config, QueueStore store, IReadOnlyCollection<string>? ids = null)
    {
        await using var scheduler = new DeliveryScheduler(config, store);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await scheduler.RunPassAsync(ids, timeout.Token);
    }

    private Process Start(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        _processes.Add(p);
        return p;
    }

    private static void WaitForPort(string ip, int port)
    {
        for (int i = 0; i < 100; i++)
        {
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Parse(ip), port);
                return;
            }
            catch (SocketException) { Thread.Sleep(50); }
        }
        throw new InvalidOperationException($"nothing listens on {ip}:{port}");
    }

    internal static int FreePortOnAll(string[] ips, bool udp = false) => TestPorts.Free(ips, udp);

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (var d in _disposables) await d.DisposeAsync();
        foreach (var o in Enumerable.Reverse(_owned)) o.Dispose();
    }
}

/// <summary>smtp-sink's -c counters ("sess=2 quit=2 mesg=5"), read from its output; updated when a session ends, on QUIT and on each message.</summary>
internal sealed class SinkProcess
{
    private readonly StringBuilder _output = new();

    public SinkProcess(Process process)
    {
        Task.Run(async () =>
        {
            var buffer = new char[256];
            int n;
            while ((n = await process.StandardOutput.ReadAsync(buffer)) > 0)
                lock (_output) _output.Append(buffer, 0, n);
        });
    }

    public (int Sessions, int Quits, int Messages) Counters()
    {
        string text;
        lock (_output) text = _output.ToString();
        var matches = System.Text.RegularExpressions.Regex.Matches(text, @"sess=(\d+) quit=(\d+) mesg=(\d+)");
        if (matches.Count == 0) return (0, 0, 0);
        var last = matches[^1];
        return (int.Parse(last.Groups[1].Value), int.Parse(last.Groups[2].Value), int.Parse(last.Groups[3].Value));
    }
}

/// <summary>An in-process MailOps listener and the queue it stores into.</summary>
internal sealed record Receiver(SmtpListener Listener, QueueStore Store)
{
    /// <summary>Stored bodies, this receiver's own Received header removed.</summary>
    public List<(Envelope Envelope, string Body)> Messages() => Store.List().Select(m =>
    {
        using var reader = new StreamReader(Store.OpenBody(m.Id), Encoding.UTF8);
        return (Store.ReadEnvelope(m.Id)!, SmtpFixture.StripOwnReceived(reader.ReadToEnd()));
    }).ToList();

    public byte[] RawBody(string id)
    {
        using var stream = Store.OpenBody(id);
        var ms = new MemoryStream();
        stream.CopyTo(ms);
        return ms.ToArray();
    }
}

/// <summary>Greets every connection with a fixed line and closes it, counting connections (a host that refuses service).</summary>
internal sealed class Greeter : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _connections;

    public Greeter(IPEndPoint endpoint, string greeting)
    {
        _listener = new TcpListener(endpoint);
        _listener.Start();
        _loop = Task.Run(async () =>
        {
            var bytes = Encoding.ASCII.GetBytes(greeting + "\r\n");
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    Interlocked.Increment(ref _connections);
                    await client.GetStream().WriteAsync(bytes, _stop.Token);
                }
                catch (OperationCanceledException) { return; }
                catch (IOException) { }
                catch (SocketException) { }
            }
        });
    }

    public int Connections => Volatile.Read(ref _connections);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch (OperationCanceledException) { }
    }
}
