#!/usr/bin/env bash
# Starts anteroom-turn on loopback and relays coturn's turnutils_uclient through it to
# turnutils_peer over UDP: channels client to client (-y), Send indications (-s), static user
# and TURN REST secret (-W). Every run must lose no packet. Every process started here is
# stopped by PID on exit; each step has a timeout.
# Usage: run.sh path/to/anteroom-turn
set -euo pipefail
turn_bin=$1
command -v turnutils_uclient >/dev/null && command -v turnutils_peer >/dev/null || {
  echo "SKIP: coturn's turnutils are not installed (scripts/deps installs them)"
  exit 77
}

# Other suites on this shared machine bind loopback ports too: run in a network namespace of our
# own when we may (root), so nobody else's port can collide with ours.
if [ -z "${AR_TURN_NETNS:-}" ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec env AR_TURN_NETNS=1 unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi

port=34780 peer_port=34800 metrics_port=34790
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# IPv6 (RFC 6156) where loopback has ::1.
v6=()
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1'; then v6=(--listening-ip ::1 --relay-ip ::1); fi
"$turn_bin" --listening-ip 127.0.0.1 --listening-port $port --relay-ip 127.0.0.1 "${v6[@]}" \
  --realm anteroom.test --user alice:wonderland --use-auth-secret \
  --static-auth-secret integration-secret --allow-loopback-peers --workers 2 \
  --min-port 42000 --max-port 42999 --metrics-listen 127.0.0.1:$metrics_port \
  2>"$dir/turn.log" &
pids+=($!)
turn_pid=$!
peer_l=(-L 127.0.0.1)
[ ${#v6[@]} -gt 0 ] && peer_l+=(-L ::1)
turnutils_peer -p $peer_port "${peer_l[@]}" >"$dir/peer.log" 2>&1 &
pids+=($!)

for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$metrics_port/healthz" >/dev/null || {
  echo "FAIL: anteroom-turn did not come up"; cat "$dir/turn.log"; exit 1
}

fails=0
run() { # run <name> <server address> <peer address> <uclient args...>
  local name=$1 server=$2 peer=$3; shift 3
  local out="$dir/$name.out"
  if ! timeout 60 turnutils_uclient -p $port -e "$peer" -r $peer_port -n 100 -l 170 -m 5 -z 5 \
      "$@" "$server" >"$out" 2>&1; then
    echo "FAIL $name: turnutils_uclient exited with an error"; tail -5 "$out"; fails=$((fails + 1))
    return
  fi
  local sent recv
  sent=$(grep -oE 'tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+$' "$out" | tail -1 |
    sed -E 's/tot_send_msgs=([0-9]+), tot_recv_msgs=([0-9]+)/\1 \2/') || true
  read -r s r <<<"${sent:-0 -1}"
  if grep -q 'Total lost packets 0 (' "$out" && [ "$s" -gt 0 ] && [ "$s" -eq "$r" ]; then
    echo "ok   $name: $s sent, $r received, no loss"
  else
    echo "FAIL $name: sent=$s received=$r"; grep -E 'lost|error' "$out" | tail -5
    fails=$((fails + 1))
  fi
}

v4=127.0.0.1
run channels_static_user $v4 $v4 -y -u alice -w wonderland
run send_indications $v4 $v4 -s -u alice -w wonderland
run peer_static_user_dont_fragment $v4 $v4 -g -u alice -w wonderland
run channels_rest_secret $v4 $v4 -y -W integration-secret
run send_rest_secret_no_rtcp $v4 $v4 -s -c -W integration-secret
if [ ${#v6[@]} -gt 0 ]; then
  run ipv6_client_and_relay ::1 ::1 -x -u alice -w wonderland
  run ipv4_client_ipv6_relay $v4 ::1 -x -y -W integration-secret
else
  echo "skip ipv6: loopback has no ::1"
fi

metrics=$(curl -sf "http://127.0.0.1:$metrics_port/metrics")
in_pkts=$(echo "$metrics" | grep -E '^anteroom_turn_relayed_packets_total\{transport="udp",direction="in"\}' |
  awk '{print $2}')
sleep 1.2 # metrics are pushed once a second
metrics=$(curl -sf "http://127.0.0.1:$metrics_port/metrics")
in_pkts=$(echo "$metrics" | grep -E '^anteroom_turn_relayed_packets_total\{transport="udp",direction="in"\}' |
  awk '{print $2}')
if [ "${in_pkts:-0}" -gt 0 ]; then
  echo "ok   metrics: $in_pkts packets relayed in"
else
  echo "FAIL metrics: no relayed packets counted"; fails=$((fails + 1))
fi
if echo "$metrics" | grep -qE 'alice|127\.0\.0\.1'; then
  echo "FAIL metrics: a username or address leaked into /metrics"; fails=$((fails + 1))
fi

kill -TERM "$turn_pid"
for _ in $(seq 50); do kill -0 "$turn_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$turn_pid" 2>/dev/null; then
  echo "FAIL: anteroom-turn did not stop on SIGTERM"; fails=$((fails + 1))
else
  wait "$turn_pid" && echo "ok   clean stop on SIGTERM" || {
    echo "FAIL: anteroom-turn exited with an error on SIGTERM"; fails=$((fails + 1)); }
fi
[ "$fails" -eq 0 ] || { tail -20 "$dir/turn.log"; exit 1; }
