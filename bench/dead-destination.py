#!/usr/bin/env python3
"""Dead destination (issue 4, behaviour 14): N messages (default 10,000) queued for one
destination whose only host answers every connection with "421 service not available" and
closes. `mailops serve` runs for DURATION seconds (default 40) with DestinationBackoff BACKOFF
(default 5 s, doubling per failure). Measured: connections the dead host received, and when;
envelope files rewritten; the server's CPU time. The goal: no more than one connection per
backoff period, instead of one per message.

Loopback only; bounded in messages, in time, and every process is stopped at the end.
Needs Postfix's smtp-source (preload). Usage: bench/dead-destination.py [N] [DURATION] [BACKOFF]
"""
import os, shutil, socket, subprocess, sys, tempfile, threading, time, json

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 40
BACKOFF = float(sys.argv[3]) if len(sys.argv) > 3 else 5
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
mailops = os.path.join(root, "src/MailOps.Cli/bin/Release/net10.0/mailops")
subprocess.run(["dotnet", "build", "-c", "Release", "-v", "q", "-nologo", os.path.join(root, "src/MailOps.Cli")], check=True, stdout=subprocess.DEVNULL)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

dead_port, smtp_port = free_port(), free_port()
connections = []
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", dead_port))
listener.listen(64)
listener.settimeout(0.5)
stop = threading.Event()

def dead_host():
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        connections.append(time.monotonic())
        try:
            conn.sendall(b"421 4.3.2 service not available\r\n")
        finally:
            conn.close()

work = tempfile.mkdtemp(prefix="mailops-dead-")
queue = os.path.join(work, "queue")
config = os.path.join(work, "config.json")
with open(config, "w") as f:
    json.dump({"HostName": "bench.test", "LocalDomains": [], "SmartHost": f"127.0.0.1:{dead_port}",
               "DestinationBackoff": f"{BACKOFF}s", "MaxConnectionsPerClient": 200, "Tls": {"Enabled": False}}, f)

def serve(*extra):
    p = subprocess.Popen([mailops, "serve", "--config", config, "--queue", queue, "--listen", f"127.0.0.1:{smtp_port}", *extra],
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "serving on" in line:
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p

def stopped(p):
    p.terminate()
    p.wait(timeout=60)

try:
    p = serve("--no-delivery")
    subprocess.run(["timeout", "600", "smtp-source", "-s", "20", "-m", str(N), "-l", "1024", "-d", "-f", "s@client.test",
                    "-t", "u@dead.test", f"127.0.0.1:{smtp_port}"], check=True, stdout=subprocess.DEVNULL)
    stopped(p)
    queued = len(os.listdir(os.path.join(queue, "env")))
    assert queued == N, f"queued {queued}, expected {N}"
    before = {n: os.stat(os.path.join(queue, "env", n)).st_mtime_ns for n in os.listdir(os.path.join(queue, "env"))}

    threading.Thread(target=dead_host, daemon=True).start()
    t0 = time.monotonic()
    p = serve()
    time.sleep(DURATION)
    with open(f"/proc/{p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    stopped(p)
    stop.set()
    after = {n: os.stat(os.path.join(queue, "env", n)).st_mtime_ns for n in os.listdir(os.path.join(queue, "env"))}
    rewritten = sum(1 for n, m in after.items() if before.get(n) != m)

    # Backoff periods elapsed: 0, B, B+2B, B+2B+4B, ... each allows one probe.
    periods, t, b = 1, BACKOFF, BACKOFF
    while t < DURATION:
        periods, b = periods + 1, b * 2
        t += b
    times = ", ".join(f"{c - t0:.1f}" for c in connections)
    print(f"dead destination: {N} messages queued, server ran {DURATION:.0f} s, DestinationBackoff {BACKOFF:.0f} s doubling")
    print(f"  connections to the dead host: {len(connections)} (at {times} s); backoff periods begun: {periods}")
    print(f"  envelopes rewritten: {rewritten} of {N}; still queued: {len(after)}; server CPU time: {cpu:.2f} s")
    ok = len(connections) <= periods and len(after) == N
    print(f"RESULT dead-destination connections={len(connections)} periods={periods} rewritten={rewritten} cpu={cpu:.2f}s verify={'OK' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)
finally:
    stop.set()
    shutil.rmtree(work, ignore_errors=True)
