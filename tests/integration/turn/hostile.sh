#!/usr/bin/env bash
# Hostile input with turn_probe (issue 2, "Tests in make test"; mission S6).
# Usage: hostile.sh <server-binary> peers|send|auth|quota|stale|ratelimit
#   peers  every reserved peer class gets 403 on CreatePermission and ChannelBind (UDP relay) and on
#          Connect (TCP relay, RFC 6062), with the server's defaults; public peers get 0; the
#          operator's allow-loopback-peers, allowed-peer-ip and denied-peer-ip change exactly that.
#   send   nothing reaches a denied peer through Send indications or ChannelData, and the same
#          probe does deliver once the peer is allowed (so the check can fail).
#   auth   wrong password, unknown user, expired or forged REST username: 401.
#   quota  user-quota and total-quota: the allocation over the quota gets 486.
#   stale  a nonce older than stale-nonce gets 438, and the fresh nonce in that answer works.
#   ratelimit  a flood of unauthenticated requests from one source is cut short (S6), while
#          other sources are still answered.
# The probe binary comes from $AR_TURN_PROBE (CMake sets it).
AR_ARGS=("$@")
. "$(dirname "$0")/lib.sh"
ar_init "${1:-}"
case=${2:-}
PROBE=${AR_TURN_PROBE:-}
if [ -z "$PROBE" ] || [ ! -x "$PROBE" ]; then
    ar_die "set AR_TURN_PROBE to the built turn_probe binary"
fi
ar_require timeout

CREDS=(--realm=anteroom.test --user=alice:alice-secret)
REST_SECRET=hostile-rest-secret

# Peers the relay must refuse by default: one or more per reserved class, IPv4 and the IPv6
# forms that reach the same IPv4 addresses.
RESERVED=(
    127.0.0.1 127.1.2.3 0.0.0.0 0.1.2.3 10.0.0.1 172.16.0.1 172.31.255.254 192.168.1.1
    100.64.0.1 100.127.255.254 169.254.169.254 169.254.0.1 224.0.0.1 239.255.255.250
    255.255.255.255 240.0.0.1 192.0.0.1 192.0.2.1 198.18.0.1 198.51.100.1 203.0.113.1
    ::1 :: fc00::1 fd12:3456::1 fe80::1 ff02::1 ff0e::1 2001:db8::1
    ::ffff:127.0.0.1 ::ffff:10.0.0.1 ::ffff:169.254.169.254 ::127.0.0.1 ::10.0.0.1
    64:ff9b::a00:1 64:ff9b::7f00:1 64:ff9b:1::a00:1 2002:a00:1::1 2002:7f00:1::1
    2001:0:4136:e378:8000:63bf:f5ff:fffe
)
# Public unicast peers that the same probe must be allowed to reach (the control group).
PUBLIC=(1.1.1.1 8.8.4.4 2606:4700:4700::1111 2a00:1450:4001::1)

# probe <expected output> <probe args...>: runs turn_probe and matches all it prints, lines
# joined by spaces, against an extended regular expression ("allocate 0 permission 403").
# Each probe comes from its own source address in 127.0.1.0/24 (all of 127/8 is loopback), as
# separate clients would: the server limits unauthenticated requests per source address, and
# that limit has its own check (ratelimit).
PROBE_N=0
probe() {
    local want=$1 out
    shift
    PROBE_N=$((PROBE_N + 1))
    out=$(timeout 20 "$PROBE" -s "127.0.0.1:$AR_PORT" -b "127.0.1.$((PROBE_N % 250 + 1))" "$@" 2>&1 | tr '\n' ' ')
    out=${out% }
    if [[ $out =~ ^($want)$ ]]; then
        ar_pass "${PROBE_WHAT:-} ${*: -1}: $out"
    else
        ar_fail "${PROBE_WHAT:-} ${*: -1}: want '$want', got '$out'"
    fi
}

# The probe picks an IPv6 relay for an IPv6 peer; the server listens on ::1 too.
# An allowed peer's Connect gets 0 where tcp_listener runs, else 447 (RFC 6062 section 5.2:
# nothing answers there in the test namespace).
peer_table() { # peer_table 403|allowed <peers...>
    local want=$1 peer perm conn
    shift
    perm=$want conn=$want
    [ "$want" = allowed ] && perm=0 conn='0|447'
    for peer in "$@"; do
        PROBE_WHAT="peer $peer" probe "allocate 0 permission $perm" -u alice -w alice-secret -p "$peer" permission
        PROBE_WHAT="peer $peer" probe "allocate 0 channel $perm" -u alice -w alice-secret -p "$peer" channel
        PROBE_WHAT="peer $peer" probe "allocate 0 connect ($conn)" -t -u alice -w alice-secret -p "$peer" -P "$AR_PEER_PORT" connect
    done
}

tcp_listener() { # accepts TCP connections on [::]:$AR_PEER_PORT (IPv4 too) in the background
    python3 -c '
import socket, sys
s = socket.create_server(("::", int(sys.argv[1])), family=socket.AF_INET6, dualstack_ipv6=True)
conns = []
while True:
    conns.append(s.accept()[0])
' "$AR_PEER_PORT" &
    AR_BG_PIDS="$AR_BG_PIDS $!"
}

case $case in
    peers)
        ar_server_start "${CREDS[@]}"
        peer_table 403 "${RESERVED[@]}"
        peer_table allowed "${PUBLIC[@]}"
        ar_check "server still running" ar_server_alive
        ar_server_stop
        # The operator's options, with coturn's meaning.
        tcp_listener
        ar_server_start "${CREDS[@]}" --allow-loopback-peers --allowed-peer-ip=10.0.0.1 \
            --denied-peer-ip=1.1.1.0-1.1.1.255
        peer_table allowed 127.0.0.1 ::1 10.0.0.1
        peer_table 403 1.1.1.1 10.0.0.2 192.168.1.1 ::ffff:1.1.1.1
        ;;
    send)
        ar_server_start "${CREDS[@]}"
        out=$(timeout 20 "$PROBE" -s "127.0.0.1:$AR_PORT" -u alice -w alice-secret \
            -p 127.0.0.1 -P "$AR_PEER_PORT" send 2>&1)
        ar_check "denied loopback peer: permission 403 ($(tr '\n' ' ' <<<"$out"))" grep -qx 'permission 403' <<<"$out"
        ar_check "denied loopback peer: channel 403" grep -qx 'channel 403' <<<"$out"
        ar_check "denied loopback peer: no Send indication or ChannelData delivered" grep -qx 'delivered 0' <<<"$out"
        out=$(timeout 20 "$PROBE" -t -s "127.0.0.1:$AR_PORT" -u alice -w alice-secret \
            -p ::ffff:127.0.0.1 -P "$AR_PEER_PORT" send 2>&1)
        ar_check "denied mapped loopback peer over TCP: nothing delivered ($(tr '\n' ' ' <<<"$out"))" grep -qx 'delivered 0' <<<"$out"
        ar_check "server still running" ar_server_alive
        ar_server_stop
        ar_server_start "${CREDS[@]}" --allow-loopback-peers
        out=$(timeout 20 "$PROBE" -s "127.0.0.1:$AR_PORT" -u alice -w alice-secret \
            -p 127.0.0.1 -P "$AR_PEER_PORT" send 2>&1)
        ar_check "allowed loopback peer: both datagrams delivered ($(tr '\n' ' ' <<<"$out"))" grep -qx 'delivered 2' <<<"$out"
        ;;
    auth)
        ar_server_start "${CREDS[@]}"
        PROBE_WHAT="wrong password" probe "allocate 401" -u alice -w wrong-secret allocate
        PROBE_WHAT="wrong password over TCP" probe "allocate 401" -t -u alice -w wrong-secret allocate
        PROBE_WHAT="unknown user" probe "allocate 401" -u mallory -w alice-secret allocate
        PROBE_WHAT="right password" probe "allocate 0" -u alice -w alice-secret allocate
        ar_check "server still running" ar_server_alive
        ar_server_stop
        ar_server_start --realm=anteroom.test --use-auth-secret --static-auth-secret="$REST_SECRET"
        read -r name pass < <(ar_rest_cred "$REST_SECRET" bob 600)
        PROBE_WHAT="(REST username valid for 10 min)" probe "allocate 0" -u "$name" -w "$pass" allocate
        read -r name pass < <(ar_rest_cred "$REST_SECRET" bob -60)
        PROBE_WHAT="(REST username expired a minute ago)" probe "allocate 401" -u "$name" -w "$pass" allocate
        read -r name pass < <(ar_rest_cred other-secret bob 600)
        PROBE_WHAT="(REST password from another secret)" probe "allocate 401" -u "$name" -w "$pass" allocate
        ;;
    quota)
        # A fresh server for each part, so that no part depends on how quickly another's
        # allocations are freed.
        ar_server_start "${CREDS[@]}" --user=bob:bob-secret --user-quota=2
        PROBE_WHAT="user-quota 2" probe "allocate 0 allocate 0 allocate 486" -u alice -w alice-secret allocate 3
        PROBE_WHAT="user-quota 2, another user" probe "allocate 0 allocate 0" -u bob -w bob-secret allocate 2
        ar_server_stop
        ar_server_start "${CREDS[@]}" --user-quota=2
        PROBE_WHAT="user-quota 2 over TCP" probe "allocate 0 allocate 0 allocate 486" -t -u alice -w alice-secret allocate 3
        ar_server_stop
        ar_server_start "${CREDS[@]}" --user=bob:bob-secret --total-quota=3
        PROBE_WHAT="total-quota 3" probe "allocate 0 allocate 0 allocate 0 allocate 486" -u alice -w alice-secret allocate 4
        ar_server_stop
        ar_server_start "${CREDS[@]}" --user=bob:bob-secret --total-quota=3
        # Alice holds two allocations while Bob asks for two: one fits under the total.
        : >"$AR_WORK/hold"
        "$PROBE" -s "127.0.0.1:$AR_PORT" -u alice -w alice-secret -H 3 allocate 2 >"$AR_WORK/hold" 2>&1 &
        holder=$!
        for ((i = 0; i < 50; i++)); do
            [ "$(grep -c 'allocate' "$AR_WORK/hold")" -ge 2 ] && break
            sleep 0.1
        done
        PROBE_WHAT="total-quota 3, 2 held by another user" probe "allocate 0 allocate 486" -u bob -w bob-secret allocate 2
        wait "$holder"
        ar_check "the holder got its two allocations ($(tr '\n' ' ' <"$AR_WORK/hold"))" \
            [ "$(grep -c 'allocate 0' "$AR_WORK/hold")" -eq 2 ]
        ar_server_stop
        # A Refresh with LIFETIME 0 deletes the allocation (RFC 8656 section 7), so it stops
        # counting against the quota. (coturn 4.6.1 keeps counting the UDP session until it
        # times out and fails this check.)
        ar_server_start "${CREDS[@]}" --user-quota=2
        PROBE_WHAT="user-quota 2" probe "allocate 0 allocate 0" -u alice -w alice-secret allocate 2
        PROBE_WHAT="user-quota 2, after releasing both" probe "allocate 0 allocate 0" -u alice -w alice-secret allocate 2
        ;;
    stale)
        ar_server_start "${CREDS[@]}" --stale-nonce=10
        out=$(timeout 30 "$PROBE" -s "127.0.0.1:$AR_PORT" -u alice -w alice-secret stale 12 2>&1)
        ar_check "a 12 s old nonce gets 438 (stale-nonce 10 s) ($(tr '\n' ' ' <<<"$out"))" grep -qx 'refresh-stale 438' <<<"$out"
        ar_check "the nonce sent with 438 is accepted" grep -qx 'refresh 0' <<<"$out"
        out=$(timeout 30 "$PROBE" -s "127.0.0.1:$AR_PORT" -u alice -w alice-secret stale 0 2>&1)
        ar_check "a fresh nonce is not stale ($(tr '\n' ' ' <<<"$out"))" grep -qx 'refresh-stale 0' <<<"$out"
        ;;
    ratelimit)
        ar_server_start "${CREDS[@]}"
        # 1500 unauthenticated Binding requests from one source over about 1.5 s, read as they
        # come: a server without a limit (coturn) answers them all; the default limit (100 a
        # second, bursts of 400: --unauth-rate) answers at most its burst plus its rate over the
        # time the flood took. The time is measured, not assumed: on a busy machine the sender
        # runs slower, and the limiter rightly lets more through.
        read -r answered elapsed < <(python3 - "$AR_PORT" <<'PY'
import os, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("127.0.2.1", 0))
s.connect(("127.0.0.1", int(sys.argv[1])))
s.setblocking(False)
n = 0
def drain():
    global n
    try:
        while True:
            s.recv(2048)
            n += 1
    except BlockingIOError:
        pass
start = time.monotonic()
for i in range(1500):
    s.send(struct.pack("!HHI", 1, 0, 0x2112A442) + os.urandom(12))
    if i % 10 == 9:
        drain()
        time.sleep(0.01)
end = time.monotonic() + 0.5
while time.monotonic() < end:
    drain()
    time.sleep(0.01)
print(n, "%.2f" % (time.monotonic() - start))
PY
)
        # The bound: burst + rate x (sending and reading time), with 10% slack for timer edges.
        bound=$(python3 -c "print(int((400 + 100 * float('${elapsed:-99}')) * 1.1))")
        ar_check "a flood of 1500 unauthenticated requests from one source is limited (answered: $answered in ${elapsed:-?} s, at most $bound allowed)" \
            test "${answered:-1500}" -lt 1500 -a "${answered:-1500}" -le "$bound"
        ar_check "another source is answered meanwhile" python3 "$AR_HERE/stun_ping.py" 127.0.0.1 "$AR_PORT" 2
        ;;
    *) ar_die "unknown case '$case' (peers, send, auth, quota, stale, ratelimit)" ;;
esac
ar_check "server still running" ar_server_alive
ar_server_stop
ar_finish
