#!/usr/bin/env python3
"""stun_ping.py HOST PORT SECONDS: exits 0 as soon as HOST answers a STUN Binding request over UDP
with a Binding success response (retrying every 100 ms), 1 if nothing answers in SECONDS."""
import os
import socket
import struct
import sys
import time

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
deadline = time.monotonic() + seconds
with socket.socket(fam, socket.SOCK_DGRAM) as s:
    s.settimeout(0.1)
    while time.monotonic() < deadline:
        tid = os.urandom(12)
        s.sendto(struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid, (host, port))
        try:
            while True:
                data = s.recv(2048)
                if len(data) >= 20 and data[8:20] == tid and data[0:2] == b"\x01\x01":
                    sys.exit(0)
        except (socket.timeout, ConnectionRefusedError):
            pass
sys.exit(1)
