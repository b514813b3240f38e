#!/usr/bin/env bash
# Garbage on a listener never crashes, leaks or stalls other clients (issue 2).
# Usage: garbage.sh <server-binary> udp|tcp|tls
# While slow clients hold TCP and TLS connections open (slowloris), garbage.py throws malformed
# input at the chosen listener several times; then turnutils_stunclient and turnutils_uclient
# (UDP, TCP, TLS) must still be served, the server must still run, and on SIGTERM it must exit
# cleanly with no sanitizer report (the asan preset builds the server with ASan+UBSan).
AR_ARGS=("$@")
. "$(dirname "$0")/lib.sh"
ar_init "${1:-}"
case=${2:-}
case $case in udp | tcp | tls) ;; *) ar_die "unknown case '$case' (udp, tcp, tls)" ;; esac
ar_require turnutils_uclient turnutils_peer turnutils_stunclient timeout

ar_cert
turnutils_peer -L 127.0.0.1 -p "$AR_PEER_PORT" >"$AR_WORK/peer.log" 2>&1 &
AR_BG_PIDS="$AR_BG_PIDS $!"
ar_server_start --realm=anteroom.test --user=alice:alice-secret --allow-loopback-peers \
    --tls-listening-port="$AR_TLS_PORT" --cert="$AR_WORK/cert.pem" --pkey="$AR_WORK/key.pem"

port=$AR_PORT
[ "$case" = tls ] && port=$AR_TLS_PORT
G=$AR_HERE/garbage.py

# Slow clients on both stream listeners for the whole run. The attackers send from 127.0.0.3
# (and ::1), the clients that must still be served from 127.0.0.1 and 127.0.0.2, as separate
# hosts would: the server may limit a source that misbehaves.
python3 "$G" slowloris 127.0.0.1 "$AR_PORT" 150 --conns 40 --source 127.0.0.3 --until "$AR_WORK/stop" >"$AR_WORK/slow-tcp.log" 2>&1 &
slow_tcp=$!
python3 "$G" slowloris 127.0.0.1 "$AR_TLS_PORT" 150 --tls --conns 40 --source 127.0.0.3 --until "$AR_WORK/stop" >"$AR_WORK/slow-tls.log" 2>&1 &
slow_tls=$!
AR_BG_PIDS="$AR_BG_PIDS $slow_tcp $slow_tls"

for round in 1 2 3; do
    for host in 127.0.0.1 ::1; do
        log=$AR_WORK/garbage.$case.$round.$host.log
        src=127.0.0.3
        [ "$host" = ::1 ] && src=::1
        if timeout 60 python3 "$G" "$case" "$host" "$port" --source "$src" >"$log" 2>&1; then
            ar_pass "round $round of $case garbage to $host ($(head -1 "$log"))"
        else
            tail -5 "$log"
            ar_fail "round $round of $case garbage to $host (log $log)"
        fi
    done
    ar_check "server alive after round $round" ar_server_alive
done

# Garbage must not stall anyone: the slow clients are still connected while these run.
ar_check "Binding answered within 3 s" python3 "$AR_HERE/stun_ping.py" 127.0.0.1 "$AR_PORT" 3
out=$(timeout 10 turnutils_stunclient -p "$AR_PORT" -L "$AR_CLIENT_IP" 127.0.0.1 2>&1)
ar_check "turnutils_stunclient served ($(tail -1 <<<"$out"))" \
    grep -qE "UDP reflexive addr: $AR_CLIENT_IP:[1-9]" <<<"$out"
for t in udp tcp tls; do
    flags=()
    [ $t = tcp ] && flags=(-t)
    [ $t = tls ] && flags=(-t -S -p "$AR_TLS_PORT")
    ar_uclient_start "uclient over $t relays 40 of 40 messages after the garbage" 40 \
        -p "$AR_PORT" -u alice -w alice-secret -m 2 -n 20 -l 120 -z 5 -c "${flags[@]}" \
        -e 127.0.0.1 -r "$AR_PEER_PORT"
done
ar_uclient_wait

touch "$AR_WORK/stop"
ar_check "slow clients ran their course" wait "$slow_tcp"
ar_check "slow TLS clients ran their course" wait "$slow_tls"
echo "$(cat "$AR_WORK/slow-tcp.log") (TCP); $(cat "$AR_WORK/slow-tls.log") (TLS)"
ar_check "server still running" ar_server_alive
ar_server_stop
ar_finish
