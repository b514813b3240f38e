#!/usr/bin/env bash
# Bursts through a UDP channel (turn_probe burst): datagrams of mixed sizes, sent together both
# ways, each arrives whole, alone and in order. This guards the relay's batched sending, which
# packs runs of same-size datagrams for one destination into one UDP GSO message (docs/turn.md).
# Usage: burst.sh <server-binary> gso
#   gso  three servers: on 127.0.0.1; (in the test namespace) on a wildcard listener asked at
#        127.0.0.2, so the GSO messages also carry IP_PKTINFO; and with loopback's MTU at 1500
#        bytes, where the kernel refuses to segment the 1480-byte and longer runs and the relay
#        must send them one by one (anteroom-turn logs turn_udp_gso_limited once). On
#        anteroom-turn, where the kernel has UDP GSO, the probe's UDP_GRO rounds must also see
#        batched runs both ways, so the test cannot pass with batching silently off; and its
#        two worker threads must run as SCHED_BATCH (src/turn/udp.c).
AR_ARGS=("$@")
. "$(dirname "$0")/lib.sh"
ar_init "${1:-}"
case=${2:-}
PROBE=${AR_TURN_PROBE:-}
if [ -z "$PROBE" ] || [ ! -x "$PROBE" ]; then
    ar_die "set AR_TURN_PROBE to the built turn_probe binary"
fi
[ "$case" = gso ] || ar_die "usage: $0 <server-binary> gso"
USER_FLAGS=(--realm=anteroom.test --user=alice:alice-secret --allow-loopback-peers)

# Whether this kernel has UDP GSO (the UDP_SEGMENT socket option, Linux 4.18).
GSO=$(python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.getsockopt(17, 103); print(1)
except OSError:
    print(0)')

# burst_check <what> <server port> [source address]: one probe run and its checks.
burst_check() {
    local what=$1 port=$2 src=${3:-} log=$AR_WORK/burst.$((++BURST_RUNS)).log args=()
    [ -n "$src" ] && args=(-b "$src")
    timeout 60 "$PROBE" -s "${src:-127.0.0.1}:$port" -u alice -w alice-secret -p 127.0.0.1 \
        -P "$AR_PEER_PORT" "${args[@]}" burst 6 >"$log" 2>&1
    local res
    res=$(grep '^burst' "$log" | tail -1)
    ar_check "$what: every datagram whole and in order both ways (${res:-no result; log $log})" \
        grep -q '^burst ok' "$log"
    if [ "$AR_KIND" = anteroom ] && [ "$GSO" = 1 ]; then
        local tp tc
        tp=$(sed -nE 's/.*coalesced_to_peer=([0-9]+).*/\1/p' "$log")
        tc=$(sed -nE 's/.*coalesced_to_client=([0-9]+).*/\1/p' "$log")
        ar_check "$what: runs were sent batched (GSO) to the peer ($tp) and to the client ($tc)" \
            test "${tp:-0}" -gt 0 -a "${tc:-0}" -gt 0
    fi
}
BURST_RUNS=0

policy_of() { # policy_of /proc/.../stat: its scheduling policy (field 41; the name, field 2, may hold spaces)
    local st
    st=$(cat "$1" 2>/dev/null) || return 0
    st=${st##*) }
    # shellcheck disable=SC2086
    set -- $st
    echo "${39}"
}
thread_policies() { # one line per thread of the server: its policy
    local f
    for f in /proc/"$AR_SERVER_PID"/task/*/stat; do policy_of "$f"; done
}

workers=()
[ "$AR_KIND" = anteroom ] && workers=(--workers=2)
ar_server_start "${USER_FLAGS[@]}" "${workers[@]}"
burst_check "127.0.0.1" "$AR_PORT"
if [ "$AR_KIND" = anteroom ]; then
    # Its worker threads run as SCHED_BATCH (policy 3), so a datagram that wakes one does not
    # preempt its sender and batches stay full (src/turn/udp.c, sched_batch); the main thread
    # keeps the default policy (0). Read from each thread's stat (field 41), which needs no
    # CONFIG_SCHED_DEBUG.
    pol=$(thread_policies)
    batch=$(grep -cx 3 <<<"$pol")
    main=$(policy_of "/proc/$AR_SERVER_PID/stat")
    ar_check "both worker threads run as SCHED_BATCH ($batch), the main thread not (${main:-?})" \
        test "$batch" -eq 2 -a "${main:-x}" = 0
    ar_server_stop
    # sched-batch=false: every thread keeps the default policy.
    ar_server_start "${USER_FLAGS[@]}" "${workers[@]}" --sched-batch=false
    pol=$(thread_policies)
    ar_check "with sched-batch=false every thread keeps the default policy ($(tr '\n' ' ' <<<"$pol"))" \
        test -n "$pol" -a "$(grep -cvx 0 <<<"$pol")" -eq 0
fi
ar_server_stop

if [ -n "${AR_IN_SANDBOX:-}" ]; then
    ar_server_start "${USER_FLAGS[@]}" --listening-ip=0.0.0.0 --relay-ip=127.0.0.1
    burst_check "wildcard listener asked at 127.0.0.2" "$AR_PORT" 127.0.0.2
    ar_server_stop

    ip link set lo mtu 1500 || ar_die "cannot set loopback's MTU in the test namespace"
    # anteroom-turn: one worker and debug logs, so a second burst after its one-second tick
    # meets the same worker with the limit lifted, refused again and logged at DEBUG only.
    extra=()
    [ "$AR_KIND" = anteroom ] && extra=(--workers=1 --log-level=debug)
    ar_server_start "${USER_FLAGS[@]}" "${extra[@]}"
    burst_check "loopback MTU 1500" "$AR_PORT"
    if [ "$AR_KIND" = anteroom ] && [ "$GSO" = 1 ]; then
        ar_check "the refused GSO runs were sent one by one and the limit logged" \
            grep -q '"turn_udp_gso_limited"' "$AR_SERVER_LOG"
        sleep 1.5
        burst_check "loopback MTU 1500, after the worker's tick" "$AR_PORT"
        info=$(grep -c '"level":"info".*"turn_udp_gso_limited"' "$AR_SERVER_LOG")
        debug=$(grep -c '"level":"debug".*"turn_udp_gso_limited"' "$AR_SERVER_LOG")
        ar_check "the limit is lifted on the tick and set again, logged at INFO once ($info info, $debug debug)" \
            test "$info" -eq 1 -a "$debug" -ge 1
    fi
    ar_server_stop
    ip link set lo mtu 65536
else
    echo "skip wildcard listener and MTU 1500: they need the test namespace"
fi
ar_finish
