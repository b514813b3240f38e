#!/usr/bin/env python3
"""Writes TURN messages (RFC 8656, RFC 6062) and RFC 5769's vectors into fuzz/corpus/stun/.

The seeds give the fuzzer a start on every method and attribute the relay handles; they are
built here independently of our C builder so that a builder bug does not shape the corpus.
Usage: tests/vectors/stun/turn_seeds.py (from anywhere); rerun after changing the list.
"""
import hashlib
import hmac
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "..", "fuzz", "corpus", "stun")
COOKIE = 0x2112A442
TID = bytes(range(1, 13))
KEY = hashlib.md5(b"alice:anteroom:secret").digest()


def msg_type(method, cls):
    return ((method & 0xF) | ((method & 0x70) << 1) | ((method & 0xF80) << 2)
            | ((cls & 1) << 4) | ((cls & 2) << 7))


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def xaddr(t, ip, port):
    parts = ip.split(".")
    if len(parts) == 4:
        a = bytes(int(p) for p in parts)
        x = bytes(b ^ c for b, c in zip(a, struct.pack("!I", COOKIE)))
        return attr(t, struct.pack("!BBH", 0, 1, port ^ (COOKIE >> 16)) + x)
    import ipaddress
    a = ipaddress.IPv6Address(ip).packed
    x = bytes(b ^ c for b, c in zip(a, struct.pack("!I", COOKIE) + TID))
    return attr(t, struct.pack("!BBH", 0, 2, port ^ (COOKIE >> 16)) + x)


def message(method, cls, attrs, auth=False, fingerprint=True):
    body = b"".join(attrs)
    hdr = lambda n: struct.pack("!HHI", msg_type(method, cls), n, COOKIE) + TID
    if auth:
        mac = hmac.new(KEY, hdr(len(body) + 24) + body, hashlib.sha1).digest()
        body += attr(0x0008, mac)
    if fingerprint:
        crc = zlib.crc32(hdr(len(body) + 8) + body) ^ 0x5354554E
        body += attr(0x8028, struct.pack("!I", crc))
    return hdr(len(body)) + body


def creds():
    return [attr(0x0006, b"alice"), attr(0x0014, b"anteroom"), attr(0x0015, b"nonce-123")]


U32 = lambda v: struct.pack("!I", v)
SEEDS = {
    "allocate_req_noauth": message(0x003, 0, [attr(0x0019, U32(17 << 24))]),
    "allocate_req": message(0x003, 0, creds() + [attr(0x0019, U32(17 << 24)),
                            attr(0x000d, U32(600)), attr(0x001a, b""),
                            attr(0x0018, b"\x80")], auth=True),
    "allocate_req_tcp_v6": message(0x003, 0, creds() + [attr(0x0019, U32(6 << 24)),
                                   attr(0x0017, b"\x02\0\0\0")], auth=True),
    "allocate_401": message(0x003, 3, [attr(0x0009, b"\0\0\x04\x01Unauthenticated"),
                            attr(0x0014, b"anteroom"), attr(0x0015, b"nonce-123")]),
    "allocate_300": message(0x003, 3, [attr(0x0009, b"\0\0\x03\0Try Alternate"),
                            attr(0x8023, struct.pack("!BBH", 0, 1, 3478) + bytes([203, 0, 113, 9]))]),
    "allocate_ok": message(0x003, 2, [xaddr(0x0016, "203.0.113.5", 50000),
                           xaddr(0x0020, "198.51.100.2", 41000), attr(0x000d, U32(600)),
                           attr(0x0022, bytes(8))], auth=True),
    "refresh_zero": message(0x004, 0, creds() + [attr(0x000d, U32(0))], auth=True),
    "create_permission": message(0x008, 0, creds() + [xaddr(0x0012, "192.0.2.10", 0),
                                 xaddr(0x0012, "2001:db8::10", 0)], auth=True),
    "channel_bind": message(0x009, 0, creds() + [attr(0x000c, struct.pack("!HH", 0x4000, 0)),
                            xaddr(0x0012, "192.0.2.10", 5000)], auth=True),
    "send_indication": message(0x006, 1, [xaddr(0x0012, "192.0.2.10", 5000),
                               attr(0x0013, b"hello peer")], fingerprint=False),
    "data_indication": message(0x007, 1, [xaddr(0x0012, "2001:db8::10", 5000),
                               attr(0x0013, bytes(range(37)))], fingerprint=False),
    "connect": message(0x00a, 0, creds() + [xaddr(0x0012, "192.0.2.10", 80)], auth=True),
    "connection_bind": message(0x00b, 0, creds() + [attr(0x002a, U32(0x1234))], auth=True),
    "connection_attempt": message(0x00c, 1, [attr(0x002a, U32(7)),
                                  xaddr(0x0012, "192.0.2.10", 80)], fingerprint=False),
    "binding_ice": message(0x001, 0, [attr(0x0006, b"a:b"), attr(0x0024, U32(0x6e0001ff)),
                           attr(0x802a, bytes(8)), attr(0x0025, b"")], auth=True),
    "channel_data": struct.pack("!HH", 0x4000, 5) + b"hello" + b"\0\0\0",
    "channel_data_unpadded": struct.pack("!HH", 0x4fff, 3) + b"abc",
    "channel_data_empty": struct.pack("!HH", 0x4001, 0),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    for name in sorted(os.listdir(HERE)):
        if name.endswith(".bin"):
            shutil.copy(os.path.join(HERE, name), os.path.join(OUT, name[:-4]))
