#!/usr/bin/env bash
# Where a running rate measurement's CPU goes, by thread or by symbol. Start a rate phase first
# (e.g. `PHASES=relay SERVERS=anteroom-x2 RATES=2000 SECS=12 bash bench/run signal &`), then:
#   bash bench/signal/profile.sh threads   # utime+stime of every thread of the workers and
#                                           # nats-server over 6 s, in 10 ms ticks, largest first
#   bash bench/signal/profile.sh perf      # perf record of them for 5 s, then perf report by
#                                           # process and library, and by process and symbol
# The PIDs come from the load generator's command line (-s workers, -B nats-servers): other
# processes with the same names (helpers, another run) are not measured. Needs perf for `perf`.
set -uo pipefail
mode=${1:-threads}
ld="" pids=""
for _ in $(seq 100); do
  ld=$(pgrep -f "ar_bench_sigload rate" | head -1)
  if [ -n "$ld" ]; then
    pids=$(tr '\0' ' ' <"/proc/$ld/cmdline" | sed -n 's/.* -s \([0-9,]*\).*/\1/p')
    [ -n "$pids" ] && break
  fi
  sleep 0.3
done
[ -n "$pids" ] || { echo "profile.sh: no rate measurement running" >&2; exit 2; }
bus=$(tr '\0' ' ' <"/proc/$ld/cmdline" | sed -n 's/.* -B \([0-9,]*\).*/\1/p')
all=$pids${bus:+,$bus}
sleep 3 # into the measured window (after the warm-up)
case $mode in
threads)
  snap() {
    for p in ${all//,/ }; do
      for t in /proc/"$p"/task/*; do
        echo "$p/$(basename "$t") $(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
      done
    done | sort
  }
  a=$(snap); sleep 6; b=$(snap)
  join <(echo "$a") <(echo "$b" | awk '{print $1, $3}') |
    awk '{d = $4 - $3; if (d > 0) print $1, $2, d}' | sort -k3 -nr ;;
perf)
  out=$(mktemp /tmp/ar-profile-XXXXXX)
  perf record -q -o "$out" -F 2000 -p "$all" -- sleep 5 >/dev/null 2>&1
  perf report -i "$out" --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -12
  perf report -i "$out" --sort comm,sym --stdio 2>/dev/null | grep -v '^#' | sed '/^$/d' | head -20
  rm -f "$out" ;;
*) echo "usage: profile.sh threads|perf" >&2; exit 2 ;;
esac
