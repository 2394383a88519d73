#!/usr/bin/env python3
"""Listener memory (issue 3): resident memory of `mailops serve` with 1,000 idle connections,
and the growth while one 100 MB message streams in. Loopback only; bounded (1,000 connections,
one message, 120 s per phase). Usage: bench/smtp-memory.py [path/to/mailops]"""
import os, re, resource, shutil, socket, subprocess, sys, tempfile, threading, time

mailops = sys.argv[1] if len(sys.argv) > 1 else "src/MailOps.Cli/bin/Release/net10.0/mailops"
IDLE, BIG = 1000, 100 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
work = tempfile.mkdtemp(prefix="mailops-mem-")
try:
    with open(os.path.join(work, "config.json"), "w") as f:
        f.write('{"HostName":"mx.bench.test","LocalDomains":["bench.test"],"Mailboxes":["*@bench.test"],'
                '"HoldIncoming":true,"MaxConnections":2000,"MaxConnectionsPerClient":2000,'
                '"MaxMessageSize":209715200,"Tls":{"Enabled":false}}')
    server = subprocess.Popen([mailops, "serve", "--config", f"{work}/config.json", "--queue", f"{work}/queue",
                               "--listen", "127.0.0.1:0", "--no-delivery"], stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096)))
    port = None
    for line in server.stderr:
        m = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
        if m: port = int(m.group(1)); break
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()

    def rss():
        with open(f"/proc/{server.pid}/status") as s:
            return int(re.search(r"VmRSS:\s+(\d+) kB", s.read()).group(1)) / 1024

    def session():
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        s.recv(512)
        return s

    # Warm up: one real message, so the measurement is not of the JIT.
    s = session(); s.sendall(b"EHLO b\r\nMAIL FROM:<b@c.test>\r\nRCPT TO:<u@bench.test>\r\nDATA\r\n"); time.sleep(0.5)
    s.sendall(b"Subject: warm\r\n\r\nx\r\n.\r\nQUIT\r\n"); time.sleep(0.5); s.close()
    base = rss()
    conns = [session() for _ in range(IDLE)]
    time.sleep(2)
    idle = rss()
    print(f"baseline {base:.0f} MiB; with {IDLE} idle connections {idle:.0f} MiB resident "
          f"(+{idle - base:.0f} MiB, {(idle - base) * 1024 / IDLE:.1f} KiB each)")
    for c in conns: c.close()
    time.sleep(2)

    before = rss(); peak = [before]; done = [False]
    def sample():
        while not done[0]:
            peak[0] = max(peak[0], rss()); time.sleep(0.05)
    threading.Thread(target=sample, daemon=True).start()
    s = session()
    s.sendall(b"EHLO b\r\nMAIL FROM:<b@c.test>\r\nRCPT TO:<u@bench.test>\r\nDATA\r\n")
    buf = b""
    while buf.count(b"\r\n") < 13 and b"354" not in buf: buf += s.recv(4096)
    line = b"m" * 98 + b"\r\n"; block = line * 1024
    t0 = time.time()
    for _ in range(BIG // len(block)): s.sendall(block)
    s.sendall(b".\r\n")
    reply = s.recv(512).decode().strip()
    done[0] = True
    print(f"100 MiB message: {reply[:40]} in {time.time() - t0:.1f} s; resident {before:.0f} MiB before, "
          f"peak {peak[0]:.0f} MiB while streaming (+{peak[0] - before:.0f} MiB)")
    s.close()
    server.terminate(); server.wait(30)
finally:
    shutil.rmtree(work, ignore_errors=True)
