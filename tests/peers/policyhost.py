#!/usr/bin/python3
"""MTA-STS policy hosts on loopback (RFC 8461 §3.3): an HTTPS server (Python's http.server and
ssl) that answers GET /.well-known/mta-sts.txt for the Host it is asked for with the file
DIR/<host>.txt as text/plain, and 404 otherwise. One certificate (--cert/--key) names every
policy host. Prints READY when listening; stops after --lifetime seconds or when stdin closes."""
import argparse, http.server, os, ssl, sys, threading

p = argparse.ArgumentParser()
p.add_argument("--cert", required=True); p.add_argument("--key", required=True)
p.add_argument("--dir", required=True)
p.add_argument("--address", default="127.0.0.1")
p.add_argument("--port", type=int, required=True)
p.add_argument("--lifetime", type=float, default=300)
a = p.parse_args()

class Policy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        path = os.path.join(a.dir, host + ".txt")
        if self.path != "/.well-known/mta-sts.txt" or "/" in host or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with open(os.path.join(a.dir, "fetches.log"), "a") as log:
            log.write(host + "\n")

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer((a.address, a.port), Policy)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(a.cert, a.key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("READY", flush=True)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
done.wait(a.lifetime)
server.shutdown()
