#!/usr/bin/env bash
# CPU per relayed message by thread: the worker's loop thread, its other (libnats) threads, and
# nats-server, from each thread's run time (/proc/<pid>/task/<tid>/schedstat) and context
# switches, read twice while full.sh's relay phase runs (one worker, pairs on it), and divided by
# the messages offered between the two reads (docs/performance.md, "Where a message's CPU goes").
#
# Usage: bench/signal/threads.sh [SIGNAL_BIN]     (default: the build's anteroom-signal)
# Environment: RATE (offered msg/s, 2000), FROM (seconds into the run of the first read, 10: past
#   the connections and the load generator's warm-up), SPAN (seconds between the reads, 8).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
bin=$(realpath "${1:-build/default/cmd/anteroom-signal/anteroom-signal}")
RATE=${RATE:-2000}
FROM=${FROM:-10}
SPAN=${SPAN:-8}
[ -x "$bin" ] || { echo "threads.sh: $bin is missing" >&2; exit 2; }
out=$(mktemp /tmp/ar-sigthreads.XXXXXX)
trap 'rm -f "$out"' EXIT
# The run, and its worker, load generator and nats-server (relay_procs.sh).
# shellcheck source=bench/signal/relay_procs.sh
. bench/signal/relay_procs.sh
relay_start threads.sh "$out" "$bin" "$bin" "$RATE" "$((FROM + SPAN + 4))"
# snap: one line per thread: who (loop, libnats, nats), run ns, context switches
snap() {
  local t who
  for t in /proc/"$worker"/task/* /proc/"$nats"/task/*; do
    case $t in
    /proc/"$worker"/task/"$worker") who=loop ;;
    /proc/"$worker"/*) who=libnats ;;
    *) who="nats-server" ;;
    esac
    echo "$who $(awk '{print $1}' "$t/schedstat" 2>/dev/null || echo 0)" \
      "$(awk '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }' "$t/status" 2>/dev/null)"
  done
}
sleep "$FROM"
a=$(snap)
sleep "$SPAN"
b=$(snap)
wait "$runner"
grep -o 'label=.*' "$out" | sed 's/^/  /'
awk -v rate="$RATE" -v span="$SPAN" '
  NR == FNR { ns[$1] -= $2; cs[$1] -= $3; next }
  { ns[$1] += $2; cs[$1] += $3 }
  END {
    msgs = rate * span
    printf "by thread, %d messages offered in %d s:\n", msgs, span
    split("loop libnats nats-server", w, " ")
    for (i = 1; i <= 3; i++)
      printf "  %-12s %8.2f us a message, %5.2f context switches a message\n", w[i], ns[w[i]] / 1e3 / msgs, cs[w[i]] / msgs
  }' <(echo "$a") <(echo "$b")
