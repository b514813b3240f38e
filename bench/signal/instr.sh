#!/usr/bin/env bash
# Instructions per relayed message in anteroom-signal's worker, counted by callgrind: a figure that,
# unlike CPU time, does not move with the load of this shared machine, for before/after
# comparisons of the relay path (docs/performance.md, "Relay: instructions per message").
#
# Usage: bench/signal/instr.sh [SIGNAL_BIN]       (default: the build's anteroom-signal)
# Environment: RATE (offered msg/s, 400: the worker runs about 50 times slower under callgrind),
#   WINDOW (seconds counted, 8), WARM (seconds from the load generator's start to the count's,
#   4: with many PAIRS, long enough for all of them to connect under valgrind), TOP (functions listed, 25), KEEP (a file to copy the worker's
#   callgrind dump to, for callgrind_annotate --inclusive=yes or kcachegrind: who calls what),
#   RATE_KIND (full.sh's: offers, the default, or "candidate"),
#   PAIRS (pairs of connections the rate is spread over: full.sh's RATE/20 by default; more pairs
#   make the state a message touches larger than the caches, as at 8,000 msg/s natively),
#   CACHE=1 (callgrind's cache simulation as well, with this machine's 48 KiB L1d and 2 MiB L2 as
#   the last level: data cache misses per message beside the instructions).
# It runs full.sh's relay phase (one worker, pairs on it, the same offers as the CPU figures) with
# the node under callgrind, zeroes the worker's counts once the rate is flowing, dumps them WINDOW
# seconds later and divides by the messages it relayed in between (calls of ar__sig_bus_to_now).
# Needs valgrind (callgrind, callgrind_control) beside what full.sh needs.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
bin=$(realpath "${1:-build/default/cmd/anteroom-signal/anteroom-signal}")
RATE=${RATE:-400}
WINDOW=${WINDOW:-8}
WARM=${WARM:-4}
TOP=${TOP:-25}
for t in valgrind callgrind_control; do
  command -v "$t" >/dev/null || { echo "instr.sh: $t is missing (apt-get install valgrind)" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "instr.sh: $bin is missing" >&2; exit 2; }
tmp=$(mktemp -d /tmp/ar-siginstr.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/node" <<EOF
#!/usr/bin/env bash
exec valgrind --tool=callgrind \$CACHE_ARGS --trace-children=yes --compress-strings=no --compress-pos=no \
  --callgrind-out-file=$tmp/cg.%p "$bin" "\$@" 2>>$tmp/valgrind.log
EOF
chmod +x "$tmp/node"
export CACHE_ARGS=""
[ "${CACHE:-0}" = 1 ] && CACHE_ARGS="--cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64"
export RATE_PAIRS=${PAIRS:-} # full.sh's pairs
# The run, and its worker, load generator and nats-server (relay_procs.sh).
# shellcheck source=bench/signal/relay_procs.sh
. bench/signal/relay_procs.sh
relay_start instr.sh "$tmp/run" "$bin" "$tmp/node" "$RATE" "$((WINDOW + WARM + 2))"
sleep "$WARM" # connections opened, the load generator's second of warm-up passed
callgrind_control -z "$worker" >/dev/null 2>&1
t0=$(date +%s.%N)
sleep "$WINDOW"
callgrind_control -d "$worker" >/dev/null 2>&1
t1=$(date +%s.%N)
wait "$runner"
grep -o 'label=.*' "$tmp/run" | sed 's/^/  /'
dump=""
for f in "$tmp"/cg."$worker".*; do [ -f "$f" ] && dump=$f && break; done # the dump, not the final file
[ -n "$dump" ] || { echo "instr.sh: no callgrind dump for the worker" >&2; exit 1; }
[ -n "${KEEP:-}" ] && cp "$dump" "$KEEP"
# Messages relayed in the window: calls of ar__sig_bus_to_now (once per frame delivered by the
# worker that relays it), read from the dump, so a worker that lagged does not skew the figure.
# Self cost per function: cost lines follow fn=; the line after a calls= line is the inclusive
# cost of that call, not the caller's own.
awk -v top="$TOP" -v bin="$(basename "$bin")" -v rate="$RATE" -v win="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
/^fn=/ { fn = substr($0, 4); next }
/^cfn=/ { cfn = substr($0, 5); next }
/^(cfi|cob|cfl)=/ { next }
/^calls=/ { skip = 1; split(substr($0, 7), c, " "); calls[cfn] += c[1]; next }
/^[0-9+*-]/ {
  if (NF < 2) next; if (skip) { skip = 0; next }
  self[fn] += $2; total += $2
  # with CACHE=1 the events are Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw (trailing zeros left out)
  m1 = $6 + $7; mll = $9 + $10; d1[fn] += m1; d1t += m1; llt += mll
  next
}
END {
  msgs = calls["ar__sig_bus_to_now"]
  if (msgs == 0) { print "instr.sh: no relayed message in the window" > "/dev/stderr"; exit 1 }
  printf "%s: %.0f instructions per relayed message (callgrind, the worker: %d messages in %.1f s at %d msg/s offered)\n", bin, total / msgs, msgs, win, rate
  if (d1t > 0) printf "  and %.1f L1d misses, %.2f last-level (2 MiB) misses per relayed message (simulated)\n", d1t / msgs, llt / msgs
  n = 0
  for (f in self) { names[++n] = f }
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (self[names[j]] > self[names[i]]) { t = names[i]; names[i] = names[j]; names[j] = t }
  if (d1t > 0) {
    printf "  by L1d misses:\n"
    for (i = 1; i <= n; i++) byd[i] = names[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (d1[byd[j]] > d1[byd[i]]) { t = byd[i]; byd[i] = byd[j]; byd[j] = t }
    for (i = 1; i <= n && i <= 15; i++) printf "  %8.2f  %s\n", d1[byd[i]] / msgs, byd[i]
    printf "  by instructions:\n"
  }
  for (i = 1; i <= n && i <= top; i++) { x = ""; if (d1t > 0) x = sprintf("  %5.2f L1d misses", d1[names[i]] / msgs); printf "  %8.0f  %5.1f%%%s  %s\n", self[names[i]] / msgs, 100 * self[names[i]] / total, x, names[i] }
}' "$dump"
