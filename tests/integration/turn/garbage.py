#!/usr/bin/env python3
"""Throws malformed input at one TURN listener. Exit status 0 unless the server answered what it
must silently drop (UDP) or the listener stopped accepting connections (TCP, TLS); crashes and
leaks are judged by the caller from the server's exit status and output.

  garbage.py udp|tcp|tls HOST PORT [--seed N] [--source ADDR]   one round of malformed messages
  garbage.py slowloris HOST PORT SECONDS [--tls] [--conns N] [--until FILE]
        holds N connections open for SECONDS (or until FILE exists), trickling a STUN header one
        byte every 200 ms
"""
import argparse
import os
import random
import socket
import ssl
import struct
import sys
import time

COOKIE = 0x2112A442


def stun(mtype, body=b"", length=None, cookie=COOKIE, tid=None):
    """A STUN message with a chosen (possibly lying) length field."""
    tid = tid if tid is not None else os.urandom(12)
    n = len(body) if length is None else length
    return struct.pack("!HHI", mtype, n, cookie) + tid + body


def attr(atype, value, length=None):
    n = len(value) if length is None else length
    return struct.pack("!HH", atype, n) + value + b"\0" * (-len(value) % 4)


def malformed(rng):
    """(name, message, must_drop): input that is wrong in one way each. Those with must_drop
    set are not STUN requests at all (RFC 8489 section 6.3: silently discarded); the others are
    requests a server may answer with an error."""
    rnd = rng.randbytes
    binding = stun(0x0001)
    yield "empty", b"", True
    for n in (1, 2, 3, 4, 7, 8, 19):
        yield "truncated header %d" % n, binding[:n], True
    yield "huge length field", stun(0x0001, length=0xFFFC), True
    yield "huge length, random body", stun(0x0003, rnd(64), length=0xFFFC), True
    yield "length not multiple of 4", stun(0x0001, b"\0\0\0", length=3), True
    yield "error code short", stun(0x0111, attr(0x0009, b"\0")), True
    yield "response class from client", stun(0x0101, attr(0x0020, rnd(8))), True
    yield "send indication, no peer", stun(0x0016, attr(0x0013, rnd(32))), True
    yield "data indication from client", stun(0x0017, attr(0x0013, rnd(32))), True
    yield "channel data huge length", struct.pack("!HH", 0x4000, 0xFFFF) + rnd(16), True
    yield "channel data unbound", struct.pack("!HH", 0x4FFF, 8) + rnd(8), True
    yield "channel data past range", struct.pack("!HH", 0x7FFF, 4) + rnd(4), True
    yield "http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True
    yield "tls record on plain port", b"\x16\x03\x01\xff\xff" + rnd(64), True
    for i in range(40):
        # A first byte of 0x00/0x01 with a random cookie is RFC 3489 STUN, which may be answered.
        m = rnd(rng.choice((1, 5, 20, 100, 548, 1400)))
        yield "random %d" % i, b"\xff" + m, True
    # Header fine, attributes not: a server may answer 400 (RFC 8489 section 6.3 vs 6.3.1).
    yield "attr longer than message", stun(0x0003, attr(0x0019, b"\x11\0\0\0", length=0xFFF0)), False
    yield "attr length 0xffff", stun(0x0003, struct.pack("!HH", 0x0006, 0xFFFF) + rnd(8)), False
    yield "41 attributes", stun(0x0003, b"".join(attr(0x8022, b"x") for _ in range(41))), False
    yield "attr after fingerprint", stun(0x0001, attr(0x8028, b"\0" * 4) + attr(0x8022, b"x")), False
    yield "integrity wrong size", stun(0x0003, attr(0x0006, b"alice") + attr(0x0008, rnd(7))), False
    yield "integrity, unknown user", stun(0x0003, attr(0x0006, rnd(300)) + attr(0x0014, b"r")
                                          + attr(0x0015, rnd(40)) + attr(0x0008, rnd(20))), False
    yield "xor-peer bad family", stun(0x0008, attr(0x0012, b"\0\x07\0\0" + rnd(4))), False
    yield "xor-peer short", stun(0x0008, attr(0x0012, b"\0\x01")), False
    yield "no magic cookie", stun(0x0001, cookie=0xDEADBEEF), False
    yield "unknown method", stun(0x0FEF), False
    for i in range(60):  # a valid Allocate with one bit flipped: reaches every parser branch
        m = bytearray(stun(0x0003, attr(0x0019, b"\x11\0\0\0") + attr(0x000D, b"\0\0\x02\x58")
                           + attr(0x0006, b"alice") + attr(0x0008, rnd(20)) + attr(0x8028, rnd(4))))
        m[rng.randrange(len(m))] ^= 1 << rng.randrange(8)
        yield "bit flip %d" % i, bytes(m), False


SOURCE = None  # (address, 0) to send from, or None


def udp(host, port, rng):
    """Sends everything, then reads answers for a while and attributes each to what it answers
    by transaction id: an answer to a must-drop message, or to nothing we sent with that id,
    is a failure."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sent = {}
    bad = []
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        if SOURCE:
            s.bind(SOURCE)
        for name, msg, must_drop in malformed(rng):
            if len(msg) >= 20:
                sent[msg[8:20]] = (name, must_drop)
            s.sendto(msg, (host, port))
            time.sleep(0.001)
        big = stun(0x0003, rng.randbytes(65000), length=65000)
        for _ in range(20):  # maximum-size datagrams
            s.sendto(big[:65507], (host, port))
        s.settimeout(0.5)
        try:
            while True:
                reply = s.recv(65535)
                name, must_drop = sent.get(reply[8:20], ("unknown transaction", True))
                if must_drop:
                    bad.append(name)
        except (socket.timeout, ConnectionRefusedError):
            pass
    if bad:
        print("server answered messages it must drop: %s" % ", ".join(bad))
        return 1
    return 0


def connect(host, port, tls):
    s = socket.create_connection((host, port), timeout=5, source_address=SOURCE)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


def client_hello():
    """The first flight of a real TLS client, to send in pieces."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def stream(host, port, rng, tls):
    """Each malformed message on its own connection (over TLS after a full handshake), all held
    open together, then half closed cleanly and half reset."""
    conns = []
    for _, msg, _ in malformed(rng):
        s = connect(host, port, tls)
        try:
            s.sendall(msg)
        except OSError:
            pass  # the server may hang up on garbage at once
        conns.append(s)
    s = connect(host, port, tls)
    s.sendall(stun(0x0003, rng.randbytes(4096), length=0xFFFC))  # claims 64 KiB, sends 4 KiB
    conns.append(s)
    if tls:
        hello = client_hello()
        for n in (1, 5, 6, 50, len(hello) - 1):  # half-open handshakes
            s = socket.create_connection((host, port), timeout=5, source_address=SOURCE)
            s.sendall(hello[:n])
            conns.append(s)
        for junk in (hello + rng.randbytes(200), b"\x16\x03\x01\xff\xff" + rng.randbytes(300),
                     b"\x80\x2e\x01\x00\x02" + rng.randbytes(45), b"\x15\x03\x03\x00\x02\x02\x28"):
            s = socket.create_connection((host, port), timeout=5, source_address=SOURCE)
            s.sendall(junk)
            conns.append(s)
        conns.append(socket.create_connection((host, port), timeout=5, source_address=SOURCE))
    time.sleep(0.5)
    for i, s in enumerate(conns):
        if i % 2:  # reset instead of close
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    # The listener must still accept and complete a handshake.
    connect(host, port, tls).close()
    return 0


def slowloris(host, port, seconds, tls, nconns, until):
    conns = [connect(host, port, tls) for _ in range(nconns)]
    msg = stun(0x0001)
    start = time.monotonic()
    i = 0
    while time.monotonic() < start + seconds and not (until and os.path.exists(until)):
        for s in list(conns):
            try:
                s.send(msg[i % len(msg):i % len(msg) + 1])
            except OSError:
                conns.remove(s)  # the server may hang up on slow clients: that is fine
        i += 1
        time.sleep(0.2)
    print("slowloris: %d of %d connections still open after %.0f s"
          % (len(conns), nconns, time.monotonic() - start))
    for s in conns:
        s.close()
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("udp", "tcp", "tls", "slowloris"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("seconds", type=int, nargs="?", default=10)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--until", help="slowloris stops early once this file exists")
    ap.add_argument("--source", help="local address to send from")
    ap.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
    a = ap.parse_args()
    print("garbage.py %s seed %d" % (a.mode, a.seed))
    rng = random.Random(a.seed)
    global SOURCE
    SOURCE = (a.source, 0) if a.source else None
    try:
        if a.mode == "udp":
            return udp(a.host, a.port, rng)
        if a.mode == "slowloris":
            return slowloris(a.host, a.port, a.seconds, a.tls, a.conns, a.until)
        return stream(a.host, a.port, rng, a.mode == "tls")
    except (OSError, ssl.SSLError) as e:
        # Refused, reset during a handshake, timed out: the listener is not serving.
        print("garbage.py: the %s listener at %s port %d failed: %s" % (a.mode, a.host, a.port, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
