#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ws into fuzz/corpus/ws/: RFC 6455's example frames, fragments,
protocol errors, and upgrade requests (accepted and refused). Byte 0 picks the mode (even: frames,
with byte 1 the chunk size; odd: upgrade, bit 1 allowing no Origin)."""
import os

out = os.path.join(os.path.dirname(__file__), "..", "corpus", "ws")
os.makedirs(out, exist_ok=True)

def mask(payload, key):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))

key = bytes([0x37, 0xFA, 0x21, 0x3D])
frames = {
    "hello_unmasked": bytes([0x81, 0x05]) + b"Hello",
    "hello_masked": bytes([0x81, 0x85]) + key + mask(b"Hello", key),
    "fragments": bytes([0x01, 0x03]) + b"Hel" + bytes([0x80, 0x02]) + b"lo",
    "fragments_masked": bytes([0x01, 0x83]) + key + mask(b"Hel", key)
    + bytes([0x89, 0x80]) + key + bytes([0x80, 0x82]) + key + mask(b"lo", key),
    "ping_pong": bytes([0x89, 0x05]) + b"Hello" + bytes([0x8A, 0x85]) + key + mask(b"Hello", key),
    "len16": bytes([0x82, 0xFE, 0x01, 0x00]) + key + bytes(256),
    "len64": bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]) + bytes(64),
    "close": bytes([0x88, 0x85]) + key + mask(b"\x03\xe8bye", key),
    "close_empty": bytes([0x88, 0x80]) + key,
    "utf8_split": bytes([0x01, 0x82]) + key + mask(b"a\xe2", key)
    + bytes([0x80, 0x82]) + key + mask(b"\x82\xac", key),
    "bad_rsv": bytes([0xC1, 0x80]) + key,
    "bad_utf8": bytes([0x81, 0x82]) + key + mask(b"\xc0\x80", key),
    "bad_control_len": bytes([0x89, 0xFE, 0x00, 0x7E]) + key,
}
for name, data in frames.items():
    with open(os.path.join(out, "frame_" + name), "wb") as f:
        f.write(bytes([0x00, 3]) + data)

req = (b"GET /signal HTTP/1.1\r\nHost: signal.example.org\r\nUpgrade: websocket\r\n"
       b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       b"Origin: https://app.example.org\r\nSec-WebSocket-Protocol: anteroom.v1\r\n"
       b"Sec-WebSocket-Version: 13\r\n\r\n")
upgrades = {
    "ok": req,
    "ok_trailing": req + bytes([0x81, 0x85]) + key,
    "no_origin": req.replace(b"Origin: https://app.example.org\r\n", b""),
    "bad_origin": req.replace(b"app.example.org", b"evil.example"),
    "version8": req.replace(b"Version: 13", b"Version: 8"),
    "bad_key": req.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short=="),
    "post": req.replace(b"GET", b"POST"),
    "partial": req[:60],
    "body": req.replace(b"\r\n\r\n", b"\r\nContent-Length: 2\r\n\r\nhi"),
}
for name, data in upgrades.items():
    with open(os.path.join(out, "upgrade_" + name), "wb") as f:
        f.write(bytes([0x03 if name == "no_origin" else 0x01]) + data)
