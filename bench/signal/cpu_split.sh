#!/usr/bin/env bash
# The user and system parts of a relay server's CPU per relayed message, during full.sh's relay
# phase: which side of the system-call boundary a difference from the bare relay lies on
# (docs/performance.md, "Relay: the two passes over the message path"). report.sh's figures
# are the threads' run time as a whole; this splits it by utime and stime from /proc (in clock
# ticks, 10 ms here: read a difference of a tick or two as noise).
#
# Usage: bench/signal/cpu_split.sh SERVER RATE     (SERVER: anteroom or bare; RATE: msg/s)
# Environment: SECS (length of full.sh's rate run, 24), WARM (seconds from the server's start to
#   the first reading, 10), WINDOW (seconds between the readings, 10), SIGNAL_BIN (as full.sh).
# For anteroom it reads the worker (the child of the node full.sh starts, n1), not nats-server.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
srv=${1:?usage: cpu_split.sh anteroom|bare RATE}
rate=${2:?usage: cpu_split.sh anteroom|bare RATE}
SECS=${SECS:-24}
WARM=${WARM:-10}
WINDOW=${WINDOW:-10}
case "$srv" in anteroom | bare) ;; *)
  echo "cpu_split.sh: SERVER is anteroom or bare" >&2
  exit 2
  ;;
esac
[ $((WARM + WINDOW + 2)) -le "$SECS" ] || { echo "cpu_split.sh: WARM + WINDOW must end before SECS" >&2; exit 2; }
out=$(mktemp /tmp/ar-cpusplit.XXXXXX)
trap 'rm -f "$out"' EXIT
PHASES=relay SERVERS=$srv RATES=$rate SECS=$SECS bash bench/signal/full.sh >"$out" 2>&1 &
bench=$!

# The process to read: a descendant of this run of full.sh, found by its command line.
descendants() {
  local c
  # shellcheck disable=SC2013 # the file is one line of space-separated PIDs
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}
found() { # found PATTERN: the first descendant whose command line matches
  local p
  for p in $(descendants "$bench"); do
    { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q -- "$1" && { echo "$p"; return; }
  done
}
pid=
for _ in $(seq 100); do
  sleep 0.3
  if [ "$srv" = anteroom ]; then
    sup=$(found ' --node-name n1 ')
    [ -n "$sup" ] && pid=$(tr -d ' \n' <"/proc/$sup/task/$sup/children" 2>/dev/null)
  else
    pid=$(found ar_bench_bare_relay)
  fi
  [ -n "$pid" ] && break
done
if [ -z "$pid" ]; then
  wait "$bench"
  echo "cpu_split.sh: the $srv server did not start; full.sh said:" >&2
  cat "$out" >&2
  exit 1
fi
ticks() { awk '{ print $14, $15 }' "/proc/$pid/stat"; }
sleep "$WARM"
read -r u1 s1 < <(ticks)
sleep "$WINDOW"
read -r u2 s2 < <(ticks)
wait "$bench"
rc=$?
[ $rc -eq 0 ] || { echo "cpu_split.sh: full.sh failed:" >&2; cat "$out" >&2; exit 1; }
hz=$(getconf CLK_TCK)
awk -v u=$((u2 - u1)) -v s=$((s2 - s1)) -v hz="$hz" -v r="$rate" -v w="$WINDOW" -v l="$srv@$rate" 'BEGIN {
  n = r * w
  printf "%-16s user %5.2f us  system %5.2f us  per relayed message (%d and %d ticks over %d s)\n",
    l, u / hz * 1e6 / n, s / hz * 1e6 / n, u, s, w }'
