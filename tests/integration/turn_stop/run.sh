#!/usr/bin/env bash
# SIGTERM with client connections open. For each case anteroom-turn is started, the connections
# are made, SIGTERM is sent, and the server must exit with status 0 within 5 s with no assertion
# or sanitizer report in its output. Cases: an idle TCP connection; an idle TLS connection after
# its handshake; a TCP client holding an allocation; an RFC 6062 control connection with a bound
# data connection and its peer connection; a TCP connection its client closed just before the
# signal (the server's graceful close still pending). Every process is stopped by PID on exit.
# Usage: run.sh path/to/anteroom-turn path/to/turn_probe path/to/peer.py
set -euo pipefail
turn_bin=$1 probe=$2 peer_py=$3
port=36280 tls_port=36281 echo_port=36300
. "$(dirname "$0")/../turn/lib.sh"
ar_rs_begin KILL
ar_cert
python3 "$peer_py" echo $echo_port "$dir/peer.log" &
pids+=($!)

fails=0
start_turn() {
  "$turn_bin" --listening-ip 127.0.0.1 --listening-port $port --relay-ip 127.0.0.1 \
    --tls-listening-port $tls_port --cert "$dir/cert.pem" --pkey "$dir/key.pem" \
    --realm anteroom.test --user alice:wonderland --allow-loopback-peers --workers 2 \
    --min-port 45000 --max-port 45099 >"$dir/turn.log" 2>&1 &
  turn_pid=$!
  pids+=("$turn_pid")
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "FAIL: anteroom-turn did not come up"; cat "$dir/turn.log"; exit 1
}
# stop_turn <case>: SIGTERM, then exit 0 within 5 s and a clean log.
stop_turn() {
  kill -TERM "$turn_pid"
  local rc=0 i
  for i in $(seq 50); do kill -0 "$turn_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$turn_pid" 2>/dev/null; then
    echo "FAIL $1: still running 5 s after SIGTERM"; fails=$((fails + 1)); kill -KILL "$turn_pid"
  fi
  wait "$turn_pid" || rc=$?
  if [ "$rc" -eq 0 ] && ! grep -qE 'Assertion|AddressSanitizer|LeakSanitizer|runtime error' "$dir/turn.log"; then
    echo "ok   $1: clean exit on SIGTERM"
  else
    echo "FAIL $1: exit status $rc"; grep -E 'Assertion|Sanitizer|runtime error' "$dir/turn.log" | head -5
    fails=$((fails + 1))
  fi
}

start_turn
exec 5<>/dev/tcp/127.0.0.1/$port
sleep 0.3
stop_turn "idle TCP connection"
exec 5<&-

start_turn
timeout 20 python3 -c '
import socket, ssl, sys, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
print("up", flush=True)
time.sleep(15)' $tls_port >"$dir/tls.out" 2>&1 &
tls_pid=$!
pids+=("$tls_pid")
for _ in $(seq 50); do grep -q up "$dir/tls.out" && break; sleep 0.1; done
grep -q up "$dir/tls.out" || { echo "FAIL: no TLS connection"; fails=$((fails + 1)); }
stop_turn "idle TLS connection"
kill "$tls_pid" 2>/dev/null || true

start_turn
timeout 20 "$probe" -s 127.0.0.1:$port -u alice -w wonderland -t -H 10 allocate 2 >"$dir/alloc.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ "$(grep -c '^allocate 0' "$dir/alloc.out")" -ge 2 ] && break; sleep 0.1; done
grep -q '^allocate 0' "$dir/alloc.out" || { echo "FAIL: probe did not allocate"; fails=$((fails + 1)); }
stop_turn "TCP clients holding allocations"

start_turn
timeout 20 "$probe" -s 127.0.0.1:$port -u alice -w wonderland -t -p 127.0.0.1 -P $echo_port -H 10 \
  tcplife hold >"$dir/hold.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^echo 0' "$dir/hold.out" && break; sleep 0.1; done
grep -q '^echo 0' "$dir/hold.out" || { echo "FAIL: no RFC 6062 data path"; cat "$dir/hold.out"; fails=$((fails + 1)); }
stop_turn "RFC 6062 control, data and peer connections"

start_turn
for _ in 1 2 3 4 5; do
  exec 6<>/dev/tcp/127.0.0.1/$port
  exec 6<&-
done
stop_turn "connections closed by their clients just before the signal"

[ "$fails" -eq 0 ] || exit 1
echo "all stop checks passed"
