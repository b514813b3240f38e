#!/usr/bin/env bash
# Relay sockets bound at the first permission (docs/turn.md, "Relay ports"): when no port of the
# relay range is one the kernel hands out by itself (outside net.ipv4.ip_local_port_range, or in
# ip_local_reserved_ports), an Allocate only takes its port from the pool and the socket is
# bound when the allocation gets its first permission. Checks, against a two-port range:
#   - the server says which way it binds ("relay_ports" log line), both ways when the test runs
#     in its own network namespace (where it may change ip_local_port_range);
#   - a relayed address bound late carries data at once: permission, channel, then a Send
#     indication and ChannelData reach the peer through it;
#   - the pool still counts unbound ports: two allocations hold the range, the third gets 508;
#   - a port some other program bound after the Allocate fails the first permission with 508
#     (the allocation stays, and the port goes back to the pool when it is released), and once
#     the port is free again the same range serves permissions as before;
#   - when the range overlaps the ephemeral range, sockets are bound at Allocate as before: the
#     taken ports are skipped there and the Allocate itself gets 508;
#   - a relay address the host cannot bind is found at start (logged) and binds at Allocate.
# Usage: latebind.sh <server-binary>
AR_ARGS=("$@")
. "$(dirname "$0")/lib.sh"
ar_init "${1:-}"
PROBE=${AR_TURN_PROBE:-}
if [ -z "$PROBE" ] || [ ! -x "$PROBE" ]; then
    ar_die "set AR_TURN_PROBE to the built turn_probe binary"
fi
[ "$AR_KIND" = anteroom ] || ar_die "latebind checks anteroom-turn's own port handling"
ar_require timeout curl

# A two-port range outside the kernel's default ephemeral range (32768-60999) and outside the
# ports ar_free_port hands out (20000-32000).
if [ -n "${AR_IN_SANDBOX:-}" ]; then
    AR_MIN_PORT=15000
else
    AR_MIN_PORT=$((10000 + (RANDOM % 4000) * 2))
fi
AR_MAX_PORT=$((AR_MIN_PORT + 1))
CREDS=(--realm=anteroom.test --user=alice:alice-secret --allow-loopback-peers)

PROBE_N=0
probe() { # probe <expected output, an ERE over the lines joined by spaces> <probe args...>
    local want=$1 out
    shift
    PROBE_N=$((PROBE_N + 1))
    out=$(timeout 20 "$PROBE" -s "127.0.0.1:$AR_PORT" -b "127.0.1.$((PROBE_N % 250 + 1))" \
        -u alice -w alice-secret "$@" 2>&1 | tr '\n' ' ')
    out=${out% }
    if [[ $out =~ ^($want)$ ]]; then
        ar_pass "${PROBE_WHAT:-} ${*: -1}: $out"
    else
        ar_fail "${PROBE_WHAT:-} ${*: -1}: want '$want', got '$out'"
    fi
}

SQUAT_PID=
SQUAT_N=0
squat() { # binds UDP 127.0.0.1 on both ports of the range, as another program would
    # A new file each time: the last squatter's "bound" must not be read before this one has
    # bound (the background job truncates a reused file only once it has started).
    SQUAT_N=$((SQUAT_N + 1))
    local out="$AR_WORK/squat.$SQUAT_N.out"
    rm -f "$out"
    python3 -c '
import socket, sys, time
socks = []
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", int(p)))
    socks.append(s)
print("bound", flush=True)
time.sleep(120)
' "$AR_MIN_PORT" "$AR_MAX_PORT" >"$out" 2>&1 &
    SQUAT_PID=$!
    AR_BG_PIDS="$AR_BG_PIDS $SQUAT_PID"
    for _ in $(seq 50); do
        grep -q bound "$out" 2>/dev/null && return 0
        sleep 0.1
    done
    ar_die "the squatter could not bind $AR_MIN_PORT-$AR_MAX_PORT: $(cat "$out" 2>/dev/null)"
}
unsquat() {
    kill "$SQUAT_PID" 2>/dev/null
    wait "$SQUAT_PID" 2>/dev/null
    SQUAT_PID=
}

bind_mode() { # the bind= value of the server's relay_ports log line
    sed -n 's/.*"relay_ports".*"bind":"\([a-z_]*\)".*/\1/p' "$AR_SERVER_LOG" | head -1
}

# bind_failed_metric: anteroom_turn_relay_bind_failed_total on /metrics, once it reaches $1
# (counters are pushed about once a second: polls for up to 5 s); the last value read.
bind_failed_metric() {
    local v=
    for _ in $(seq 25); do
        v=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" |
            sed -nE 's/^anteroom_turn_relay_bind_failed_total ([0-9]+)$/\1/p')
        [ "${v:-0}" -ge "$1" ] && break
        sleep 0.2
    done
    echo "${v:-none}"
}
METRICS_PORT=3481
[ -n "${AR_IN_SANDBOX:-}" ] || METRICS_PORT=$(ar_free_port)

echo "relay range $AR_MIN_PORT-$AR_MAX_PORT; ephemeral range $(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)"
ar_server_start "${CREDS[@]}" --metrics-listen="127.0.0.1:$METRICS_PORT"
mode=$(bind_mode)
ar_check "range outside the ephemeral ports: bound at the first permission (log: $mode)" \
    test "$mode" = first_permission
PROBE_WHAT="late-bound relay" probe "allocate 0 permission 0 channel 0 delivered 2" \
    -p 127.0.0.1 -P "$AR_PEER_PORT" send
PROBE_WHAT="two ports, three allocations" probe "allocate 0 allocate 0 allocate 508" allocate 3
squat
PROBE_WHAT="port taken after the Allocate" probe "allocate 0 permission 508" -p 127.0.0.1 permission
PROBE_WHAT="port taken after the Allocate" probe "allocate 0 channel 508" -p 127.0.0.1 channel
unsquat
n=$(bind_failed_metric 2)
ar_check "the two failed binds are counted on /metrics (relay_bind_failed_total $n)" test "$n" = 2
ar_check "datagrams dropped on a full send buffer are exported (none here)" \
    bash -c 'curl -sf "http://127.0.0.1:$1/metrics" | grep -qx "anteroom_turn_send_dropped_total 0"' \
    _ "$METRICS_PORT"
PROBE_WHAT="port free again" probe "allocate 0 permission 0 channel 0 delivered 2" \
    -p 127.0.0.1 -P "$AR_PEER_PORT" send
PROBE_WHAT="port free again, freed ports reused" probe "allocate 0 allocate 0 allocate 508" allocate 3
ar_check "server still runs" ar_server_alive
ar_server_stop

# A relay address this host cannot bind (TEST-NET-1, on no interface): found at start, logged,
# and the server binds at Allocate, so the Allocate itself gets 508.
ar_server_start "${CREDS[@]}" --relay-ip=192.0.2.55
mode=$(bind_mode)
ar_check "unbindable relay address: bound at Allocate (log: $mode)" test "$mode" = allocate
ar_check "and the address that could not be bound is logged" \
    grep -q '"relay_address_unbindable"' "$AR_SERVER_LOG"
PROBE_WHAT="unbindable relay address" probe "allocate 508" allocate 1
ar_server_stop

if [ -n "${AR_IN_SANDBOX:-}" ]; then
    # Our own namespace: make the range part of the ephemeral one, so that binding late would
    # not be safe, and check the server binds at Allocate again.
    saved=$(cat /proc/sys/net/ipv4/ip_local_port_range)
    echo "$AR_MIN_PORT 60999" >/proc/sys/net/ipv4/ip_local_port_range ||
        ar_die "cannot set ip_local_port_range in the test namespace"
    ar_server_start "${CREDS[@]}"
    mode=$(bind_mode)
    ar_check "range inside the ephemeral ports: bound at Allocate (log: $mode)" test "$mode" = allocate
    PROBE_WHAT="bound at Allocate" probe "allocate 0 permission 0 channel 0 delivered 2" \
        -p 127.0.0.1 -P "$AR_PEER_PORT" send
    squat
    PROBE_WHAT="ports taken before the Allocate" probe "allocate 508" -p 127.0.0.1 permission
    unsquat
    ar_server_stop
    # ... unless the range is reserved from the ephemeral ports.
    echo "$AR_MIN_PORT-$AR_MAX_PORT" >/proc/sys/net/ipv4/ip_local_reserved_ports ||
        ar_die "cannot set ip_local_reserved_ports in the test namespace"
    ar_server_start "${CREDS[@]}"
    mode=$(bind_mode)
    ar_check "range in ip_local_reserved_ports: bound at the first permission (log: $mode)" \
        test "$mode" = first_permission
    ar_server_stop
    echo "$saved" >/proc/sys/net/ipv4/ip_local_port_range
    echo >/proc/sys/net/ipv4/ip_local_reserved_ports
fi
ar_finish
