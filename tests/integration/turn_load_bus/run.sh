#!/usr/bin/env bash
# Two relays' load boards joined over a real two-server NATS cluster (Debian's nats-server):
# a report published through one server reaches the other relay's board; malformed reports are
# refused and counted. Usage: run.sh <bus_check binary>
set -euo pipefail
check=$1
command -v nats-server >/dev/null || { echo "nats-server is not installed (scripts/deps)"; exit 1; }

. "$(dirname "$0")/../turn/lib.sh"
. "$(dirname "$0")/../app/daemon_lib.sh"
ar_rs_begin

# Four distinct ports (none is bound before the servers start, so each excludes those before it).
c1=$(free_port); c2=$(free_port "$c1"); r1=$(free_port "$c1" "$c2"); r2=$(free_port "$c1" "$c2" "$r1")
nats-server -a 127.0.0.1 -p "$c1" --cluster_name ar --cluster "nats://127.0.0.1:$r1" \
  --routes "nats://127.0.0.1:$r2" >"$dir/n1.log" 2>&1 &
pids+=($!)
nats-server -a 127.0.0.1 -p "$c2" --cluster_name ar --cluster "nats://127.0.0.1:$r2" \
  --routes "nats://127.0.0.1:$r1" >"$dir/n2.log" 2>&1 &
pids+=($!)

# Wait until both servers accept clients and see each other as a route.
# Routes retry about once a second, so allow a busy machine 30 s.
for _ in $(seq 300); do
  if grep -q "Route connection created" "$dir/n1.log" && grep -q "Route connection created" "$dir/n2.log"; then
    break
  fi
  sleep 0.1
done
grep -q "Route connection created" "$dir/n1.log" || { cat "$dir"/n*.log; echo "cluster did not form"; exit 1; }

"$check" "nats://127.0.0.1:$c1" "nats://127.0.0.1:$c2"
