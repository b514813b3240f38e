#!/usr/bin/env python3
"""Writes seed scripts for fuzz_turn_engine.c into fuzz/corpus/turn_engine/.

Each seed walks the engine through a real session (see the script format at the top of
fuzz_turn_engine.c) so the fuzzer starts from deep states. Rerun after changing the format.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "turn_engine")


def attr(t, v):
    return struct.pack("!HB", t, len(v)) + v


def signed(method_index, *attrs):
    return bytes([1, method_index, len(attrs)]) + b"".join(attrs)


def xpeer(last, port):
    ip = bytes([203, 0, 113, last])
    x = bytes(a ^ b for a, b in zip(ip, bytes([0x21, 0x12, 0xA4, 0x42])))
    return attr(0x0012, struct.pack("!BBH", 0, 1, port ^ 0x2112) + x)


UDP = attr(0x0019, bytes([17, 0, 0, 0]))
ALLOC, REFRESH, PERM, CHAN, SEND = 0, 1, 2, 3, 4
# The first signed request carries an empty NONCE: 438 hands the harness a real one.
allocate = signed(ALLOC, UDP) + signed(ALLOC, UDP)
seeds = {
    "session_channels": allocate + signed(PERM, xpeer(5, 9000))
    + signed(CHAN, attr(0x000C, bytes([0x40, 0x01, 0, 0])), xpeer(5, 9000))
    + bytes([4, 0x00, 0x01, 3]) + b"abc"
    + bytes([2, 0, 5]) + struct.pack("!H", 9000) + bytes([4]) + b"pong"
    + bytes([2, 0, 5]) + struct.pack("!H", 9001) + bytes([3]) + b"xyz"
    + bytes([3]) + struct.pack("!H", 700)
    + bytes([0, 8]) + b"\x00\x01\x00\x00\x21\x12\xa4\x42",
    "session_send": allocate + signed(PERM, xpeer(9, 80))
    + signed(SEND, xpeer(9, 80), attr(0x0013, b"hello"))
    + signed(PERM, attr(0x0012, bytes([0, 1, 0x21, 0x12, 0x2b, 0x12, 0xa4, 0x43]))),
    "session_refresh": allocate + signed(REFRESH, attr(0x000D, struct.pack("!I", 0)))
    + bytes([5, 1]) + allocate + bytes([3]) + struct.pack("!H", 1000) + signed(REFRESH),
    "session_reservation": signed(ALLOC, UDP, attr(0x0018, bytes([0x80])))
    + signed(ALLOC, UDP, attr(0x0018, bytes([0x80])))
    + bytes([5, 2]) + signed(ALLOC, UDP, attr(0x0022, bytes([0, 0, 0, 0, 0, 0, 0, 7]))),
    "garbage": bytes([0, 20]) + bytes(range(20)) + bytes([4, 0x3F, 0xFF, 0]),
}
os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
