#!/usr/bin/python3
"""A mail provider's submission service on loopback, built on aiosmtpd (Debian's python3-aiosmtpd):
one port with STARTTLS required before AUTH, one with implicit TLS (465-style), one plain port
that offers neither TLS nor AUTH. AUTH PLAIN/LOGIN checks one user and password. Every accepted
message is written to DIR/<n>.eml with an X-Provider-Auth: header naming the authenticated user.
Prints READY when listening; stops on SIGTERM, after --lifetime seconds, or (--watch-stdin) when
stdin closes."""
import argparse, os, signal, ssl, sys, threading, warnings
warnings.filterwarnings("ignore")
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword, MISSING
from base64 import b64decode

p = argparse.ArgumentParser()
p.add_argument("--cert", required=True); p.add_argument("--key", required=True)
p.add_argument("--dir", required=True)
p.add_argument("--starttls-port", type=int, required=True)
p.add_argument("--implicit-port", type=int, required=True)
p.add_argument("--plain-port", type=int, required=True)
p.add_argument("--user", required=True); p.add_argument("--password", required=True)
p.add_argument("--xoauth2-token", help="also offer AUTH XOAUTH2, accepting this access token for --user")
p.add_argument("--lifetime", type=float, default=600)
p.add_argument("--watch-stdin", action="store_true", help="also stop when stdin closes")
a = p.parse_args()

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(a.cert, a.key)
count = 0
lock = threading.Lock()

class Store:
    async def handle_DATA(self, server, session, envelope):
        global count
        with lock:
            count += 1
            n = count
        user = session.auth_data.decode() if isinstance(session.auth_data, bytes) else ""
        with open(os.path.join(a.dir, f"{n}.eml"), "wb") as f:
            f.write(f"X-Provider-Auth: {user}\r\nX-Provider-Rcpt: {','.join(envelope.rcpt_tos)}\r\n".encode())
            f.write(envelope.original_content or envelope.content)
        return "250 2.0.0 Ok: queued"

async def auth_xoauth2(self, server, args):
    """AUTH XOAUTH2 (Google's and Microsoft's SASL for OAuth 2): user=U^Aauth=Bearer T^A^A, base64."""
    data = b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
    if data is MISSING:
        return AuthResult(success=False)
    fields = dict(f.split("=", 1) for f in data.decode(errors="replace").split("\x01") if "=" in f)
    if fields.get("user") == a.user and fields.get("auth") == "Bearer " + a.xoauth2_token:
        return AuthResult(success=True, auth_data=(a.user + " via XOAUTH2").encode())
    return AuthResult(success=False, handled=False)

if a.xoauth2_token:
    Store.auth_XOAUTH2 = auth_xoauth2

def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == a.user and auth_data.password.decode() == a.password:
        return AuthResult(success=True, auth_data=a.user.encode())
    return AuthResult(success=False, handled=False)

common = dict(hostname="127.0.0.1", authenticator=authenticator, auth_exclude_mechanism=["CRAM-MD5"])
servers = [
    Controller(Store(), port=a.starttls_port, tls_context=ctx, require_starttls=True, auth_required=True, auth_require_tls=True, **common),
    Controller(Store(), port=a.implicit_port, ssl_context=ctx, auth_required=True, auth_require_tls=False, **common),
    Controller(Store(), hostname="127.0.0.1", port=a.plain_port),
]
for s in servers: s.start()
print("READY", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
if a.watch_stdin:
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
done.wait(a.lifetime)
for s in servers: s.stop()
