#!/usr/bin/env bash
# ALTERNATE-SERVER over a real NATS cluster: relays A and B publish their load through different
# servers of a two-server NATS cluster. A runs with redirect-above 0 (an allocation count: always
# over), so every Allocate it gets is answered 300 Try Alternate naming B, the least-loaded fresh
# relay of its jurisdiction on A's board; coturn's turnutils_uclient follows the redirect and
# relays through B with no loss. Relay C, of another jurisdiction, is never named. Relay D has no
# bus and names its static alternate-server. GET /load serves each relay's report.
# Every process started here is stopped by PID on exit; each step has a timeout.
# Usage: run.sh path/to/anteroom-turn
set -euo pipefail
turn_bin=$1
for t in turnutils_uclient turnutils_peer nats-server; do
  command -v $t >/dev/null || { echo "SKIP: $t is not installed (scripts/deps installs it)"; exit 77; }
done

. "$(dirname "$0")/../turn/lib.sh"
ar_rs_begin

c1=36422 c2=36423 r1=36432 r2=36433 peer_port=36800
nats-server -a 127.0.0.1 -p $c1 --cluster_name ar --cluster "nats://127.0.0.1:$r1" \
  --routes "nats://127.0.0.1:$r2" >"$dir/n1.log" 2>&1 &
pids+=($!)
nats-server -a 127.0.0.1 -p $c2 --cluster_name ar --cluster "nats://127.0.0.1:$r2" \
  --routes "nats://127.0.0.1:$r1" >"$dir/n2.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  grep -q "Route connection created" "$dir/n1.log" && grep -q "Route connection created" "$dir/n2.log" && break
  sleep 0.1
done
grep -q "Route connection created" "$dir/n1.log" || { cat "$dir"/n*.log; echo "FAIL: NATS cluster did not form"; exit 1; }

start_relay() { # start_relay <name> <port> <metrics port> <relay ports from> <args...>
  local name=$1 port=$2 mport=$3 rmin=$4; shift 4
  "$turn_bin" --listening-ip 127.0.0.1 --listening-port "$port" --relay-ip 127.0.0.1 \
    --realm anteroom.test --user alice:wonderland --allow-loopback-peers --workers 1 \
    --min-port "$rmin" --max-port $((rmin + 499)) --metrics-listen 127.0.0.1:"$mport" \
    --node-name "$name" "$@" 2>"$dir/$name.log" &
  pids+=($!)
  relays+=($!)
}
relays=()
start_relay a 36478 36490 44000 --redirect-above 0 --jurisdiction eu --nats-url nats://127.0.0.1:$c1
start_relay b 36578 36590 44500 --jurisdiction eu --nats-url nats://127.0.0.1:$c2
start_relay c 36678 36690 45000 --jurisdiction us --nats-url nats://127.0.0.1:$c2
start_relay d 36778 36790 45500 --redirect-above 0 --alternate-server 127.0.0.1:36578
turnutils_peer -p $peer_port -L 127.0.0.1 >"$dir/peer.log" 2>&1 &
pids+=($!)

fails=0
for m in 36490 36590 36690 36790; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$m/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$m/healthz" >/dev/null || { echo "FAIL: relay on $m did not come up"; cat "$dir"/*.log; exit 1; }
done

load=""
for _ in $(seq 50); do # the first report is made a second after start
  load=$(curl -sf http://127.0.0.1:36590/load || true)
  echo "$load" | grep -q '"at_ms":0}' || break
  sleep 0.2
done
if echo "$load" | grep -q '"node":"b","jurisdiction":"eu","addr":"127.0.0.1:36578"'; then
  echo "ok   GET /load: $load"
else
  echo "FAIL GET /load: '$load'"; fails=$((fails + 1))
fi
sleep 2.5 # B's reports have reached A through the cluster

allocs_total() { # the relay's granted allocations
  curl -sf "http://127.0.0.1:$1/metrics" | grep -E '^anteroom_turn_allocations_total' |
    awk '{s += $2} END {print s + 0}'
}
run() { # run <name> <server port>
  local out="$dir/$1.out" sent s r
  if ! timeout 60 turnutils_uclient -p "$2" -e 127.0.0.1 -r $peer_port -n 50 -l 170 -m 2 -z 5 \
      -y -u alice -w wonderland 127.0.0.1 >"$out" 2>&1; then
    echo "FAIL $1: turnutils_uclient exited with an error"; tail -5 "$out"; fails=$((fails + 1))
    return
  fi
  sent=$(grep -oE 'tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+$' "$out" | tail -1 |
    sed -E 's/tot_send_msgs=([0-9]+), tot_recv_msgs=([0-9]+)/\1 \2/') || true
  read -r s r <<<"${sent:-0 -1}"
  if grep -q 'Total lost packets 0 (' "$out" && [ "$s" -gt 0 ] && [ "$s" -eq "$r" ]; then
    echo "ok   $1: $s sent, $r received, no loss"
  else
    echo "FAIL $1: sent=$s received=$r"; fails=$((fails + 1))
  fi
}

run redirected_by_nats_board 36478
sleep 1.2 # counters are pushed once a second
a=$(allocs_total 36490) b=$(allocs_total 36590) c=$(allocs_total 36690)
if [ "$a" -eq 0 ] && [ "$b" -gt 0 ] && [ "$c" -eq 0 ]; then
  echo "ok   A granted none, B granted $b, C (other jurisdiction) none"
else
  echo "FAIL allocations: A=$a B=$b C=$c"; fails=$((fails + 1))
fi

run redirected_by_static_list 36778
sleep 1.2
d=$(allocs_total 36790) b2=$(allocs_total 36590)
if [ "$d" -eq 0 ] && [ "$b2" -gt "$b" ]; then
  echo "ok   D granted none and named its alternate-server (B granted $((b2 - b)) more)"
else
  echo "FAIL static alternate: D=$d B=$b->$b2"; fails=$((fails + 1))
fi

# Every relay stops cleanly on SIGTERM (under ASan this also means no leak).
for p in "${relays[@]}"; do kill -TERM "$p"; done
for p in "${relays[@]}"; do
  if ! timeout 10 tail --pid="$p" -f /dev/null || ! wait "$p"; then
    echo "FAIL: relay $p did not stop cleanly on SIGTERM"; fails=$((fails + 1))
  fi
done
[ "$fails" -eq 0 ] && echo "ok   relays stopped cleanly"
[ "$fails" -eq 0 ] || { tail -5 "$dir"/[abcd].log; exit 1; }
