#!/usr/bin/env python3
"""The test world's servers, run inside the test's "world" network namespace.

    world.py DIR

Serves, until killed:
  - an authoritative DNS server for the zone "test." on 203.0.113.53 and
    2001:db8:2::53, UDP and TCP port 53, that appends every query it
    receives to DIR/queries.log ("ADDR PROTO NAME TYPE" lines);
  - a second resolver on 203.0.113.54 / 2001:db8:2::54, port 53 (UDP, TCP)
    and 853 (DNS over TLS), recording to DIR/queries-second.log;
  - HTTP on port 80 and HTTPS on port 443 of 203.0.113.10 and
    2001:db8:2::10, several names on one address (allowed.test,
    other.test, denied.test, www.allowed.test): each answer names the
    virtual host it was asked for ("vhost=NAME tls=SNI"), so a test sees
    which site a request reached; /bulk?bytes=N streams N bytes;
  - a raw TCP "banner" server on port 2222 that speaks first (SSH-like).
Writes DIR/ready once everything listens. Python's standard library only.
"""
import os
import socket
import socketserver
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

DIR = sys.argv[1]
WEB = ["203.0.113.10", "2001:db8:2::10"]
AUTH = ["203.0.113.53", "2001:db8:2::53"]
SECOND = ["203.0.113.54", "2001:db8:2::54"]
ZONE = {
    "allowed.test": ("203.0.113.10", "2001:db8:2::10"),
    "www.allowed.test": ("203.0.113.10", "2001:db8:2::10"),
    "other.test": ("203.0.113.10", "2001:db8:2::10"),
    "denied.test": ("203.0.113.10", "2001:db8:2::10"),
    "meta.test": ("169.254.169.254", "fd00:ec2::254"),
    "bulk.test": ("203.0.113.10", "2001:db8:2::10"),
    "banner.test": ("203.0.113.10", "2001:db8:2::10"),
}
lock = threading.Lock()


def log(name, line):
    with lock, open(os.path.join(DIR, name), "a") as f:
        f.write(line + "\n")


def parse_question(msg):
    pos, labels = 12, []
    while pos < len(msg):
        n = msg[pos]
        if n == 0 or n & 0xC0:
            break
        labels.append(msg[pos + 1:pos + 1 + n].decode("latin-1"))
        pos += 1 + n
    qtype = struct.unpack("!H", msg[pos + 1:pos + 3])[0] if pos + 3 <= len(msg) else 0
    return ".".join(labels), qtype, pos + 5


def answer(msg):
    name, qtype, end = parse_question(msg)
    key = name.lower()
    rcode, records = 0, b""
    if key in ZONE:
        v4, v6 = ZONE[key]
        if qtype == 1:
            records = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_pton(socket.AF_INET, v4)
        elif qtype == 28:
            records = b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 30, 16) + socket.inet_pton(socket.AF_INET6, v6)
    else:
        rcode = 3
    flags = 0x8400 | (msg[2] & 1) << 8 | rcode
    head = msg[:2] + struct.pack("!HHHHH", flags, 1, 1 if records else 0, 0, 0)
    return head + msg[12:end] + records, name, qtype


def serve_dns(addr, logname):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((addr, 53))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, 53))
    tcp.listen(64)

    def udp_loop():
        while True:
            msg, peer = udp.recvfrom(4096)
            reply, name, qtype = answer(msg)
            log(logname, f"{addr} udp {name} {qtype}")
            udp.sendto(reply, peer)

    def tcp_conn(c):
        with c:
            while True:
                head = c.recv(2)
                if len(head) < 2:
                    return
                (n,) = struct.unpack("!H", head)
                msg = b""
                while len(msg) < n:
                    chunk = c.recv(n - len(msg))
                    if not chunk:
                        return
                    msg += chunk
                reply, name, qtype = answer(msg)
                log(logname, f"{addr} tcp {name} {qtype}")
                c.sendall(struct.pack("!H", len(reply)) + reply)

    def tcp_loop():
        while True:
            c, _ = tcp.accept()
            threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()

    threading.Thread(target=udp_loop, daemon=True).start()
    threading.Thread(target=tcp_loop, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        host = self.headers.get("Host", "")
        sni = getattr(self.connection, "sni", "-") if isinstance(self.connection, ssl.SSLSocket) else "-"
        if self.path.startswith("/bulk?bytes="):
            total = int(self.path.split("=", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(total))
            self.end_headers()
            block = b"x" * 65536
            while total > 0:
                n = min(total, len(block))
                self.wfile.write(block[:n])
                total -= n
            return
        body = f"vhost={host.split(':')[0]} tls={sni} path={self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        log("http.log", self.address_string() + " " + (args[0] % args[1:]))


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, port):
        self.address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        super().__init__((addr, port), Handler)


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(DIR, "server.crt"), os.path.join(DIR, "server.key"))

    def remember(sock, name, _ctx):
        sock.sni = name or "-"

    ctx.sni_callback = remember
    return ctx


def serve_web(addr):
    plain = Server(addr, 80)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    secure = Server(addr, 443)
    secure.socket = tls_context().wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=True)
    threading.Thread(target=secure.serve_forever, daemon=True).start()
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    banner = socket.socket(family, socket.SOCK_STREAM)
    banner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    banner.bind((addr, 2222))
    banner.listen(16)

    def banner_loop():
        while True:
            c, _ = banner.accept()
            c.sendall(b"SSH-2.0-world\r\n")
            c.close()

    threading.Thread(target=banner_loop, daemon=True).start()


def serve_dot(addr):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 853))
    s.listen(16)
    ctx = tls_context()

    def loop():
        while True:
            c, _ = s.accept()
            log("queries-second.log", f"{addr} dot connection")
            try:
                ctx.wrap_socket(c, server_side=True).close()
            except (ssl.SSLError, OSError):
                c.close()

    threading.Thread(target=loop, daemon=True).start()


for a in AUTH:
    serve_dns(a, "queries.log")
for a in SECOND:
    serve_dns(a, "queries-second.log")
    serve_dot(a)
for a in WEB:
    serve_web(a)
open(os.path.join(DIR, "ready"), "w").close()
threading.Event().wait()
