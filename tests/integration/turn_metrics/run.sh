#!/usr/bin/env bash
# Relayed packets and bytes by the client's transport. anteroom-turn listens on UDP, TCP and TLS;
# coturn's turnutils_uclient relays through it to turnutils_peer over each in turn, and after each
# run the metrics endpoint is scraped: the counters labelled with that run's transport must have
# grown by exactly what the client sent and received, and the other transports' must not have
# moved. An RFC 6062 run (-T, client to client over TCP allocations) must count its data
# connections' bytes under tcp. Every process started here is stopped by PID on exit.
# Usage: run.sh path/to/anteroom-turn
set -euo pipefail
turn_bin=$1
command -v turnutils_uclient >/dev/null && command -v turnutils_peer >/dev/null || {
  echo "SKIP: coturn's turnutils are not installed (scripts/deps installs them)"
  exit 77
}

port=35880 tls_port=35881 peer_port=35900 metrics_port=35890
. "$(dirname "$0")/../turn/lib.sh"
ar_rs_begin

ar_cert
"$turn_bin" --listening-ip 127.0.0.1 --listening-port $port --relay-ip 127.0.0.1 \
  --tls-listening-port $tls_port --cert "$dir/cert.pem" --pkey "$dir/key.pem" \
  --realm anteroom.test --user alice:wonderland --allow-loopback-peers --workers 2 \
  --min-port 44000 --max-port 44999 --metrics-listen 127.0.0.1:$metrics_port \
  2>"$dir/turn.log" &
pids+=($!)
turn_pid=$!
turnutils_peer -p $peer_port -L 127.0.0.1 >"$dir/peer.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$metrics_port/healthz" >/dev/null || {
  echo "FAIL: anteroom-turn did not come up"; cat "$dir/turn.log"; exit 1
}

fails=0
# scrape: metric values as lines "name{labels} value" into $dir/m.<n>; metrics are pushed once a
# second, so wait until two scrapes a push apart agree.
scrape() {
  local out=$1 prev=
  for _ in $(seq 10); do
    sleep 1.1
    curl -sf "http://127.0.0.1:$metrics_port/metrics" | grep -E '^anteroom_turn_(relayed|allocations_total)' >"$out"
    [ "$(cat "$out")" = "$prev" ] && return 0
    prev=$(cat "$out")
  done
  echo "FAIL: the metrics never settled"
  return 1
}
# val <file> <metric> <transport> [direction]
val() {
  local sel="transport=\"$3\""
  [ -n "${4:-}" ] && sel="$sel,direction=\"$4\""
  awk -v k="$2{$sel}" '$1 == k {print $2; f = 1} END {if (!f) print 0}' "$1"
}
# delta <before> <after> <metric> <transport> [direction]
delta() { echo $(($(val "$2" "$3" "$4" "${5:-}") - $(val "$1" "$3" "$4" "${5:-}"))); }
expect() { # expect <what> <got> <op> <want>
  if [ "$2" "$3" "$4" ]; then echo "ok   $1: $2"; else echo "FAIL $1: $2, want $3 $4"; fails=$((fails + 1)); fi
}

n=0
scrape "$dir/m.$n"
# run_case <transport label> <server port> <uclient args...>
run_case() {
  local tr=$1 sport=$2 out sent recv prev other dir_ m
  shift 2
  out="$dir/$tr.$n.out"
  prev="$dir/m.$n"
  n=$((n + 1))
  timeout 60 turnutils_uclient -p "$sport" -e 127.0.0.1 -r $peer_port -n 50 -l 170 -m 2 -z 5 \
    -u alice -w wonderland "$@" 127.0.0.1 >"$out" 2>&1 || {
    echo "FAIL $tr: turnutils_uclient exited with an error"; tail -5 "$out"; fails=$((fails + 1)); }
  read -r sent recv <<<"$(grep -oE 'tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+$' "$out" | tail -1 |
    sed -E 's/tot_send_msgs=([0-9]+), tot_recv_msgs=([0-9]+)/\1 \2/')"
  scrape "$dir/m.$n"
  echo "-- $tr ($*): uclient sent ${sent:-?}, received ${recv:-?}"
  expect "$tr allocations granted" "$(delta "$prev" "$dir/m.$n" anteroom_turn_allocations_total "$tr")" -ge 2
  expect "$tr packets out = sent" "$(delta "$prev" "$dir/m.$n" anteroom_turn_relayed_packets_total "$tr" out)" -eq "${sent:--1}"
  expect "$tr packets in = received" "$(delta "$prev" "$dir/m.$n" anteroom_turn_relayed_packets_total "$tr" in)" -eq "${recv:--1}"
  expect "$tr bytes out = 170 x sent" "$(delta "$prev" "$dir/m.$n" anteroom_turn_relayed_bytes_total "$tr" out)" -eq $((170 * ${sent:-0}))
  for other in udp tcp tls; do
    [ "$other" = "$tr" ] && continue
    for m in anteroom_turn_relayed_packets_total anteroom_turn_relayed_bytes_total; do
      for dir_ in in out; do
        expect "$other $m $dir_ unchanged by a $tr run" "$(delta "$prev" "$dir/m.$n" $m $other $dir_)" -eq 0
      done
    done
  done
}
run_case udp $port -y
run_case tcp $port -t -y
run_case tls $tls_port -t -S -y
run_case udp $port -s # Send and Data indications, not channels

# RFC 6062 over TCP: the data connections' bytes (both ways) count under tcp, not packets.
prev="$dir/m.$n"
n=$((n + 1))
timeout 60 turnutils_uclient -p $port -T -e 127.0.0.1 -n 50 -l 170 -m 2 -z 5 -u alice -w wonderland \
  127.0.0.1 >"$dir/t.out" 2>&1 || { echo "FAIL rfc6062: turnutils_uclient exited with an error"; fails=$((fails + 1)); }
scrape "$dir/m.$n"
expect "rfc6062 tcp bytes out" "$(delta "$prev" "$dir/m.$n" anteroom_turn_relayed_bytes_total tcp out)" -ge 17000
expect "rfc6062 tcp bytes in" "$(delta "$prev" "$dir/m.$n" anteroom_turn_relayed_bytes_total tcp in)" -ge 17000
expect "rfc6062 udp bytes unchanged" "$(delta "$prev" "$dir/m.$n" anteroom_turn_relayed_bytes_total udp out)" -eq 0

kill -TERM "$turn_pid"
wait "$turn_pid" || { echo "FAIL: anteroom-turn exited with an error"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] || { tail -20 "$dir/turn.log"; exit 1; }
echo "all metrics checks passed"
