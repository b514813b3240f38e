#!/usr/bin/env bash
# The CPU that idle processes burn on this machine, measured as the run time of all their threads
# (schedstat, ns) over SECS seconds and given as ms a second:
#   1. an idle nats-server with no client;
#   2. a process that only sleeps, 50 ms at a time (20 wake-ups a second): what this machine
#      charges a process for waking from idle, whatever the process does;
#   3. an idle anteroom-signal node of one worker on that nats-server (the worker's threads:
#      its loop, libnats' threads), and the nats-server with that client.
# These count against anteroom in the relay figures (report.sh adds nats-server's CPU to
# anteroom's, and the worker's own timers run while it relays), so a run's relay figures are
# read beside them (docs/performance.md, "Relay: -O3 on the message path" and "Relay: what idle
# wake-ups cost at 2,000 msg/s").
#
# Usage: bench/signal/nats_idle.sh [SIGNAL_BIN]
# Environment: SECS (10), PORT (24777: nats-server; PORT + 1: anteroom-signal), AR_BUILD
# (build/default, for ar_bench_sigload's keygen and the default SIGNAL_BIN).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
SECS=${SECS:-10}
PORT=${PORT:-24777}
build=${AR_BUILD:-build/default}
signal=${1:-$build/cmd/anteroom-signal/anteroom-signal}
for t in nats-server perl; do
  command -v $t >/dev/null || { echo "nats_idle.sh: needs $t" >&2; exit 2; }
done
work=$(mktemp -d /tmp/ar-natsidle.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$work"' EXIT

runtime() { # the run time so far of all threads of the given processes, ns
  for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done | awk '{ n += $1 } END { print n + 0 }'
}
# measure LABEL PID...: the processes' CPU over SECS seconds, as ms a second
measure() {
  local label=$1 a b
  shift
  a=$(runtime "$@")
  sleep "$SECS"
  b=$(runtime "$@")
  awk -v a="$a" -v b="$b" -v s="$SECS" -v l="$label" 'BEGIN { printf "%-58s %6.2f ms of CPU a second (%d s)\n", l ":", (b - a) / 1e6 / s, s }'
}

nats-server -a 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
nats=$!
pids+=("$nats")
sleep 2
kill -0 "$nats" 2>/dev/null || { echo "nats_idle.sh: nats-server did not start on port $PORT" >&2; exit 1; }
measure "idle nats-server, no client" "$nats"

perl -e 'select(undef, undef, undef, 0.05) while 1' &
sleeper=$!
pids+=("$sleeper")
sleep 1
measure "a process that only sleeps 50 ms at a time (20 wake-ups/s)" "$sleeper"
kill "$sleeper" 2>/dev/null

if [ ! -x "$signal" ] || [ ! -x "$build/bench/signal/ar_bench_sigload" ]; then
  echo "nats_idle.sh: $signal or $build/bench/signal/ar_bench_sigload is missing (build first)" >&2
  exit 2
fi
"$build/bench/signal/ar_bench_sigload" keygen "$work/pub" "$work/sec" >/dev/null || exit 1
"$signal" --listen 127.0.0.1 --port $((PORT + 1)) --jurisdiction eu --node-name idle --keys "$work/pub" \
  --origin https://bench.anteroom.invalid --workers 1 --nats "nats://127.0.0.1:$PORT" \
  --log-level warn >"$work/signal.log" 2>&1 &
sup=$!
pids+=("$sup")
worker=
for _ in $(seq 50); do
  worker=$(tr -d ' \n' <"/proc/$sup/task/$sup/children" 2>/dev/null)
  [ -n "$worker" ] && (exec 3<>"/dev/tcp/127.0.0.1/$((PORT + 1))") 2>/dev/null && break
  sleep 0.2
done
[ -n "$worker" ] || { echo "nats_idle.sh: anteroom-signal did not start (see its log below)" >&2; cat "$work/signal.log" >&2; exit 1; }
sleep 3 # past its start: subscriptions made, the first heartbeats out
a=$(runtime "$worker")
measure "idle anteroom-signal worker and nats-server together" "$worker" "$nats"
b=$(runtime "$worker")
awk -v a="$a" -v b="$b" -v s="$SECS" 'BEGIN { printf "%-58s %6.2f ms of CPU a second\n", "  of which the worker:", (b - a) / 1e6 / s }'
