#!/usr/bin/env python3
"""TCP peers for the RFC 6062 life-cycle test.

  peer.py echo PORT LOG       an echo server; for every connection it appends to LOG
                              "eof <ms from accept to the relay closing it>" when it closes
  peer.py blackhole PORT      a listener that never accepts, with its accept queue full: further
                              SYNs to PORT are dropped, so a connect() to it hangs until the
                              connecting side gives up (the kernel would take minutes)
Runs until killed.
"""
import select
import socket
import sys
import time


def echo(port, log):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    conns = {}
    while True:
        r, _, _ = select.select([ls] + list(conns), [], [])
        for s in r:
            if s is ls:
                c, _ = ls.accept()
                conns[c] = time.monotonic()
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                s.sendall(data)
                continue
            ms = int((time.monotonic() - conns.pop(s)) * 1000)
            s.close()
            with open(log, "a") as f:
                f.write("eof %d\n" % ms)


def blackhole(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", port))
    ls.listen(0)  # one connection fills the accept queue
    fillers = []
    for _ in range(2):
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    time.sleep(0.3)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(int(sys.argv[2]), sys.argv[3])
    else:
        blackhole(int(sys.argv[2]))
