#!/usr/bin/env bash
# The share of the worker's loop thread's CPU samples spent in glibc's allocator (_int_malloc,
# _int_free, unlink_chunk, malloc, free, malloc_consolidate) while full.sh's relay phase runs:
# how much of a relayed message still goes through malloc (docs/performance.md, "The frame
# pool's bound"). One sample profile of SPAN seconds with perf.
#
# Usage: bench/signal/malloc_share.sh [SIGNAL_BIN]   (default: the build's anteroom-signal)
# Environment: RATE (offered msg/s, 8000, over RATE/20 pairs), FROM (seconds into the run before
#   the profile, 12), SPAN (seconds profiled, 6).
# Needs perf beside what full.sh needs.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
bin=$(realpath "${1:-build/default/cmd/anteroom-signal/anteroom-signal}")
RATE=${RATE:-8000}
FROM=${FROM:-12}
SPAN=${SPAN:-6}
[ -x "$bin" ] || { echo "malloc_share.sh: $bin is missing" >&2; exit 2; }
command -v perf >/dev/null || { echo "malloc_share.sh: needs perf" >&2; exit 2; }
out=$(mktemp /tmp/ar-sigmalloc.XXXXXX)
data=$(mktemp /tmp/ar-sigmalloc-perf.XXXXXX)
trap 'rm -f "$out" "$data"' EXIT
# shellcheck source=bench/signal/relay_procs.sh
. bench/signal/relay_procs.sh
relay_start malloc_share.sh "$out" "$bin" "$bin" "$RATE" "$((FROM + SPAN + 4))"
sleep "$FROM"
perf record -F 4000 -t "$worker" -o "$data" -- sleep "$SPAN" >/dev/null 2>&1
wait "$runner"
grep -o 'label=.*' "$out" | sed 's/^/  /'
perf report -i "$data" --no-children --sort sym --stdio 2>/dev/null | awk -v rate="$RATE" '
  /%/ && $0 ~ /\] (_int_malloc|_int_free|unlink_chunk\.constprop\.0|malloc|free|cfree|malloc_consolidate)$/ { gsub("%", "", $1); m += $1 }
  END { printf "loop thread samples in the allocator at %d msg/s: %.1f %%\n", rate, m }'
