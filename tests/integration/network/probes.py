#!/usr/bin/env python3
"""Probes run inside an egress sandbox by tests/integration/network/egress_test.cpp.

    probes.py dns SERVER udp|tcp NAME TYPE   one query: "rcode=N answers=N ms=F" or "error=..."
    probes.py udp ADDR PORT                  one datagram: "sent" or "errno=NAME"
    probes.py bind ADDR PORT udp|tcp         "bound" or "errno=NAME"
    probes.py relay PORT                     an HTTP CONNECT relay on 127.0.0.1:PORT (runs until killed)
Python's standard library only.
"""
import errno
import socket
import struct
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def query(name, qtype):
    q = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack("!HH", qtype, 1)


def dns(server, proto, name, qtype):
    msg = query(name, int(qtype))
    start = time.monotonic()
    try:
        if proto == "udp":
            s = socket.socket(family(server), socket.SOCK_DGRAM)
            s.settimeout(3)
            s.sendto(msg, (server, 53))
            reply = s.recv(4096)
        else:
            s = socket.create_connection((server, 53), timeout=3)
            s.sendall(struct.pack("!H", len(msg)) + msg)
            n = struct.unpack("!H", s.recv(2))[0]
            reply = b""
            while len(reply) < n:
                reply += s.recv(n - len(reply))
    except OSError as e:
        print(f"error={errno.errorcode.get(e.errno, e)}")
        return
    ms = (time.monotonic() - start) * 1000
    flags, _, answers = struct.unpack("!HHH", reply[2:8])
    print(f"rcode={flags & 0xF} answers={answers} ms={ms:.2f}")


def udp(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    try:
        s.sendto(b"\x00" * 32, (addr, int(port)))
        print("sent")
    except OSError as e:
        print(f"errno={errno.errorcode.get(e.errno, e)}")


def bind(addr, port, proto):
    s = socket.socket(family(addr), socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
    try:
        s.bind((addr, int(port)))
        print("bound")
    except OSError as e:
        print(f"errno={errno.errorcode.get(e.errno, e)}")


def relay(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(port)))
    srv.listen(16)
    print("listening", flush=True)

    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(c):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n")[0].decode()
        method, target, _ = line.split(" ")
        try:
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
                c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                rest = target.split("://", 1)[1]
                hostport = rest.split("/", 1)[0]
                host, _, port = hostport.partition(":")
                up = socket.create_connection((host, int(port or 80)), timeout=5)
                up.sendall(head)
        except OSError as e:
            c.sendall(f"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nX-Error: {e}\r\n\r\n".encode())
            c.close()
            return
        threading.Thread(target=pipe, args=(c, up), daemon=True).start()
        pipe(up, c)

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


cmd = sys.argv[1]
{"dns": dns, "udp": udp, "bind": bind, "relay": relay}[cmd](*sys.argv[2:])
