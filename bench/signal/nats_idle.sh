#!/usr/bin/env bash
# The CPU an idle nats-server with no client burns on this machine: the run time of all its
# threads (schedstat, ns) over SECS seconds, as ms a second. It counts against anteroom in the
# relay figures (report.sh adds nats-server's CPU to anteroom's), so a run's relay figures are
# read beside it (docs/performance.md, "Relay: -O3 on the message path").
#
# Usage: bench/signal/nats_idle.sh        Environment: SECS (10), PORT (24777).
set -uo pipefail
SECS=${SECS:-10}
PORT=${PORT:-24777}
command -v nats-server >/dev/null || { echo "nats_idle.sh: needs nats-server" >&2; exit 2; }
nats-server -a 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
sleep 2
kill -0 "$pid" 2>/dev/null || { echo "nats_idle.sh: nats-server did not start on port $PORT" >&2; exit 1; }
runtime() { cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{ n += $1 } END { print n + 0 }'; }
a=$(runtime)
sleep "$SECS"
b=$(runtime)
awk -v a="$a" -v b="$b" -v s="$SECS" 'BEGIN { printf "idle nats-server, no client: %.2f ms of CPU a second (%d s)\n", (b - a) / 1e6 / s, s }'
