#!/usr/bin/env bash
# Dual allocation on loopback. anteroom-turn relays from 127.0.0.1 and ::1; turn_probe asks for a
# dual allocation (ADDITIONAL-ADDRESS-FAMILY IPv6) and must get two XOR-RELAYED-ADDRESSes, one per
# family, then relays a Send indication to 127.0.0.1 and to ::1: each must arrive from the relayed
# address of its own family, and the peer's answer must come back as a Data indication naming that
# peer. A second relay with only an IPv4 relay address must grant the IPv4 half with
# ADDRESS-ERROR-CODE (IPv6, 440). Every process started here is stopped by PID on exit.
# Usage: run.sh path/to/anteroom-turn path/to/turn_probe
set -euo pipefail
turn_bin=$1 probe=$2
python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' 2>/dev/null || {
  echo "SKIP: no IPv6 loopback (::1) on this machine"; exit 77; }
port=36180 port2=36190 peer_port=36200
. "$(dirname "$0")/../turn/lib.sh"
ar_rs_begin
start_turn() { # start_turn <port> <relay-ip args...>
  local p=$1
  shift
  "$turn_bin" --listening-ip 127.0.0.1 --listening-port "$p" "$@" --no-tcp --no-tls \
    --realm anteroom.test --user alice:wonderland --allow-loopback-peers --workers 2 \
    --min-port $((p + 1000)) --max-port $((p + 1099)) 2>>"$dir/turn.log" &
  pids+=($!)
  for _ in $(seq 50); do
    ss -Hlnu "sport = :$p" | grep -q . && return 0
    sleep 0.1
  done
  echo "FAIL: anteroom-turn did not come up on $p"; cat "$dir/turn.log"; exit 1
}
start_turn $port --relay-ip 127.0.0.1 --relay-ip ::1
start_turn $port2 --relay-ip 127.0.0.1

fails=0
want() { # want <output> <line> <what>
  if grep -qxF -- "$2" <<<"$1"; then echo "ok   $3"; else echo "FAIL $3: no line '$2'"; fails=$((fails + 1)); fi
}
out=$(timeout 30 "$probe" -s 127.0.0.1:$port -u alice -w wonderland -P $peer_port dual 2>&1) || true
echo "$out" | sed 's/^/    /'
want "$out" "allocate 0" "dual Allocate granted"
want "$out" "relayed 127.0.0.1" "IPv4 relayed address"
want "$out" "relayed ::1" "IPv6 relayed address"
[ "$(grep -c '^relayed ' <<<"$out")" -eq 2 ] && ! grep -q '^address-error' <<<"$out" &&
  echo "ok   exactly two relayed addresses, no ADDRESS-ERROR-CODE" ||
  { echo "FAIL relayed addresses"; fails=$((fails + 1)); }
want "$out" "delivered 127.0.0.1 relayed=1" "IPv4 peer reached from the IPv4 relayed address"
want "$out" "delivered ::1 relayed=1" "IPv6 peer reached from the IPv6 relayed address"
want "$out" "data-from 127.0.0.1" "IPv4 peer's answer relayed back"
want "$out" "data-from ::1" "IPv6 peer's answer relayed back"

out=$(timeout 30 "$probe" -s 127.0.0.1:$port2 -u alice -w wonderland -P $peer_port dual 2>&1) || true
echo "$out" | sed 's/^/    /'
want "$out" "allocate 0" "IPv4-only relay: dual Allocate granted"
want "$out" "relayed 127.0.0.1" "IPv4-only relay: IPv4 relayed address"
want "$out" "address-error 6 440" "IPv4-only relay: ADDRESS-ERROR-CODE IPv6 440"
[ "$(grep -c '^relayed ' <<<"$out")" -eq 1 ] && echo "ok   IPv4-only relay: one relayed address" ||
  { echo "FAIL IPv4-only relay: relayed addresses"; fails=$((fails + 1)); }
want "$out" "delivered 127.0.0.1 relayed=1" "IPv4-only relay: data relayed"

for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "FAIL anteroom-turn $p died"; fails=$((fails + 1)); }; done
[ "$fails" -eq 0 ] || { tail -20 "$dir/turn.log"; exit 1; }
echo "all dual-allocation checks passed"
