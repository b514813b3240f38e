#!/usr/bin/env bash
# The listener's yield after request-only loop turns (src/turn/udp.c, yield_after_requests; the
# yield-after-requests option, docs/turn.md). Counts the server's sched_yield calls with strace
# while a client sends datagrams of one kind, one every 2 ms:
#   - STUN Binding requests: the workers yield (a turn that carried only requests yields once,
#     whether or not another thread waits for the CPU);
#   - Binding indications and ChannelData (not requests: indications and ChannelData are what
#     carries relayed data): no yield at all;
#   - a ChannelData and a Binding request back to back (one turn, mostly): a turn that carried
#     data besides requests does not yield, so at most a quarter of the pairs may see one (each
#     pair yielded when that rule was removed);
#   - with --yield-after-requests=false, Binding requests: no yield.
# Usage: yield.sh <server-binary>
AR_ARGS=("$@")
. "$(dirname "$0")/lib.sh"
ar_init "${1:-}"
[ "$AR_KIND" = anteroom ] || ar_die "yield.sh checks anteroom-turn's own worker loop"
ar_require strace timeout

N=200

send() { # send <kind>: N datagrams of that kind to the server's UDP port
    timeout 20 python3 - "$AR_PORT" "$1" "$N" <<'EOF'
import ctypes, os, socket, struct, sys, time
port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))

class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

class mmsghdr(ctypes.Structure):  # struct msghdr, then msg_len
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int), ("len", ctypes.c_uint)]

libc = ctypes.CDLL(None, use_errno=True)

def send_both(a, b):
    """Both datagrams in one sendmmsg call: queued microseconds apart, before the worker the first
    one wakes can run (two Python sendto calls could be split by a preemption under load)."""
    bufs = [ctypes.create_string_buffer(x, len(x)) for x in (a, b)]
    iovs = [iovec(ctypes.cast(x, ctypes.c_void_p), len(y)) for x, y in zip(bufs, (a, b))]
    msgs = (mmsghdr * 2)()
    for i in range(2):
        msgs[i].iov = ctypes.pointer(iovs[i])
        msgs[i].iovlen = 1
    if libc.sendmmsg(s.fileno(), msgs, 2, 0) != 2:
        raise OSError(ctypes.get_errno(), "sendmmsg")

for _ in range(n):
    tid = os.urandom(12)
    if kind == "mixed":  # ChannelData and a Binding request at once: one loop turn, mostly
        send_both(struct.pack("!HH", 0x4000, 4) + b"data",
                  struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid)
        time.sleep(0.002)
        continue
    elif kind == "request":  # Binding request
        msg = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid
    elif kind == "indication":  # Binding indication
        msg = struct.pack("!HHI", 0x0011, 0, 0x2112A442) + tid
    else:  # ChannelData on a channel nobody bound
        msg = struct.pack("!HH", 0x4000, 4) + b"data"
    s.send(msg)
    time.sleep(0.002)
EOF
}

YIELDS=0 READS=0
# yields <kind>: sets YIELDS to the sched_yield calls the server made while <kind> was sent, and
# READS to its recvmmsg calls that returned datagrams (so "no yield" means the workers did read
# what was sent, not that nothing reached them).
yields() {
    local out="$AR_WORK/strace.$1.$RANDOM" st
    strace -f -e trace=sched_yield,recvmmsg -p "$AR_SERVER_PID" -o "$out" >/dev/null 2>"$out.err" &
    st=$!
    AR_BG_PIDS="$AR_BG_PIDS $st"
    # "Process N attached with M threads": -f attaches to every thread before it says so.
    for _ in $(seq 100); do
        grep -q attached "$out.err" 2>/dev/null && break
        sleep 0.1
    done
    grep -q attached "$out.err" 2>/dev/null ||
        ar_die "strace did not attach to the server: $(head -c 300 "$out.err")"
    send "$1" || ar_die "the $1 sender failed"
    sleep 0.3
    kill "$st" 2>/dev/null
    wait "$st" 2>/dev/null
    YIELDS=$(grep -c 'sched_yield(' "$out" 2>/dev/null)
    READS=$(grep -cE 'recvmmsg\(.*\) = [1-9]' "$out" 2>/dev/null)
}

ar_server_start --realm=anteroom.test --user=alice:alice-secret
yields request
# Each request, 2 ms apart, is a request-only turn; a yield over 2 ms pauses yielding for 10 ms
# (udp.c), so a loaded machine sees fewer: strace's own stops around each sched_yield make the
# yield slower still (a CI run with a build beside it counted 44 for 200). At least a tenth:
# every other kind below must see none, or at most a quarter.
ar_check "Binding requests: the workers yield after request-only turns ($YIELDS sched_yield calls for $N requests, $READS reads)" \
    test "$YIELDS" -ge $((N / 10)) -a "$READS" -ge 1
yields indication
ar_check "Binding indications: no yield ($YIELDS sched_yield calls, $READS reads)" test "$YIELDS" -eq 0 -a "$READS" -ge 1
yields channeldata
ar_check "ChannelData: no yield ($YIELDS sched_yield calls, $READS reads)" test "$YIELDS" -eq 0 -a "$READS" -ge 1
yields mixed
ar_check "ChannelData and a request in one turn: no yield for most pairs ($YIELDS sched_yield calls for $N pairs)" \
    test "$YIELDS" -le $((N / 4)) -a "$READS" -ge 1
ar_check "the server still answers" python3 "$AR_HERE/stun_ping.py" 127.0.0.1 "$AR_PORT" 5
ar_server_stop

ar_server_start --realm=anteroom.test --user=alice:alice-secret --yield-after-requests=false
yields request
ar_check "yield-after-requests=false: no yield for Binding requests ($YIELDS sched_yield calls, $READS reads)" \
    test "$YIELDS" -eq 0 -a "$READS" -ge 1
ar_server_stop
ar_finish
