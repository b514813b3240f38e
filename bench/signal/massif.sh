#!/usr/bin/env bash
# Where a held session's bytes go in one worker: anteroom-signal (one worker) under valgrind's
# massif while ar_bench_sigload holds N sessions (a pair per room, hello and join), then the
# allocation sites of the largest snapshot taken while they were held, divided by N.
# Usage: bench/signal/massif.sh [N (2000)]   Environment: SIGNAL_BIN, AR_BUILD (build/default).
# Slow (valgrind): a few minutes for 2,000 sessions.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
n=${1:-2000}
build=${AR_BUILD:-build/default}
load=$build/bench/signal/ar_bench_sigload
signal=${SIGNAL_BIN:-$build/cmd/anteroom-signal/anteroom-signal}
for t in valgrind ms_print nats-server; do
  command -v $t >/dev/null || { echo "massif.sh: $t is missing" >&2; exit 2; }
done
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/ar-sigmassif.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
"$load" keygen "$work/pub" "$work/sec" || exit 1
port=$((25000 + RANDOM % 2000)) np=$((port + 2000))
nats-server -a 127.0.0.1 -p "$np" >"$work/nats.log" 2>&1 &
pids+=("$!")
nats=$!
sleep 0.5
valgrind --tool=massif --massif-out-file="$work/massif.%p" --depth=10 --threshold=0.2 \
  "$signal" --listen 127.0.0.1 --port "$port" --jurisdiction eu --node-name n1 --keys "$work/pub" \
  --origin https://bench.anteroom.invalid --workers 1 --max-per-address 0 \
  --nats "nats://127.0.0.1:$np" --log-level warn >"$work/signal.log" 2>&1 &
sup=$!
pids+=("$sup")
for _ in $(seq 120); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.5; done
sleep 2
worker=$(tr -d ' \n' <"/proc/$sup/task/$sup/children")
"$load" idle -n "$n" -P 2 -H 5 -d anteroom -p "$port" -s "$worker" -B "$nats" -K "$work/sec" \
  -l massif -b 99 | sed 's/^RESULT /  /'
kill "$worker"
for _ in $(seq 100); do kill -0 "$worker" 2>/dev/null || break; sleep 0.1; done
kill "$sup" 2>/dev/null
sleep 1
out=$work/massif.$worker
[ -s "$out" ] || { echo "massif.sh: no massif output for the worker" >&2; exit 1; }
# The largest detailed snapshot (the sessions are held then; the tail is the shutdown).
ms_print "$out" >"$work/ms.txt"
peak=$(awk '/^ *[0-9]+ +[0-9,]+ +[0-9,]+ +[0-9,]+ +[0-9,]+ +[0-9,]+$/ {s = $1; u = $4; gsub(",", "", u)}
  /\(heap allocation functions\)/ && u + 0 > best {best = u + 0; snap = s} END {print snap}' "$work/ms.txt")
echo "worker heap by allocation site at massif snapshot $peak, bytes per held session ($n held):"
awk -v snap="$peak" -v n="$n" '
  /^ *[0-9]+ +[0-9,]+ +[0-9,]+ +[0-9,]+ +[0-9,]+ +[0-9,]+$/ { if (on) exit; if ($1 == snap) on = 1; next }
  on && (/^->/ || /^\| ->/) {
    line = $0; sub(/^[| ]*->/, "", line)
    split(line, f, " "); b = f[2]; gsub(/[(),B]/, "", b)
    site = line; sub(/^[^)]*\) /, "", site)
    printf "  %7.0f  %s%s\n", b / n, substr($0, 1, 1) == "|" ? "    " : "", substr(site, 1, 100)
  }' "$work/ms.txt"
