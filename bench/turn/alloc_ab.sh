#!/usr/bin/env bash
# CPU per Allocate, interleaved: coturn and one or more anteroom-turn binaries, each given ROUNDS
# runs of N Allocates (--alloc-only: no permission or channel; 64 in flight; every client socket
# on its own source address, as in run.sh) against a freshly started server. The runs take turns
# (coturn, A, B, coturn, A, B, ...), so the shared machine's other load weighs on all of them
# alike. The server's CPU is read from /proc/<pid>/task/*/schedstat (nanoseconds) while it is
# idle just before the client starts and just after the client reports its last answer, so the
# figure is not limited by the 10 ms ticks of /proc/<pid>/stat (0.7 us per Allocate at 15000,
# about the size of the differences looked for). Prints every run's ALLOC line (its own,
# tick-based cpu_us_per_alloc included) with the schedstat figure, then per server the median
# CPU us per Allocate and its ratio to coturn's median from the same invocation.
#
# Usage: bench/turn/alloc_ab.sh [LABEL=BINARY ...]
#        (default: anteroom=build/default/cmd/anteroom-turn/anteroom-turn); 'LABEL=BINARY FLAG...'
#        (one argument, quoted) adds those flags to that server's command line, e.g.
#        'noyield=build/default/cmd/anteroom-turn/anteroom-turn --yield-after-requests=false'.
# Env:   BENCH_ALLOCS (N, default 15000), BENCH_ROUNDS (default 5), BENCH_PORT (default 34760),
#        AR_BUILD (build dir, default build/default), BENCH_RELAY_PORTS (relay range of every
#        server, default 10000-29999 as in run.sh; outside the kernel's ephemeral ports, so
#        anteroom-turn binds relay sockets at the first permission: docs/turn.md; 49152-65535,
#        the default range, overlaps them and has it bind at Allocate), BENCH_SETUP=1 (each
#        allocation then also gets CreatePermission and ChannelBind, as run.sh's second CPU
#        figure, and the CPU is read after the BIND line: CPU us per usable allocation).
set -uo pipefail
# shellcheck source=bench/turn/netns.sh
. "$(dirname "$0")/netns.sh" "$@"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${AR_BUILD:-$ROOT/build/default}
TL=$BUILD/bench/turn/ar-turnload
N=${BENCH_ALLOCS:-15000}
ROUNDS=${BENCH_ROUNDS:-5}
PORT=${BENCH_PORT:-34760}
PEER_PORT=$((PORT + 10))
RELAY_PORTS=${BENCH_RELAY_PORTS:-10000-29999}
MIN_PORT=${RELAY_PORTS%-*} MAX_PORT=${RELAY_PORTS#*-}
if [ "${BENCH_SETUP:-0}" = 1 ]; then
  ONLY=() UNTIL=BIND WHAT="Allocate+CreatePermission+ChannelBind"
else
  ONLY=(--alloc-only) UNTIL=ALLOC WHAT=Allocate
fi
[ -x "$TL" ] || { echo "missing $TL: run cmake --build --preset default first" >&2; exit 1; }
command -v turnserver >/dev/null || { echo "coturn (turnserver) is not installed" >&2; exit 1; }
servers=(coturn)
declare -A BIN FLAGS
if [ $# -eq 0 ]; then set -- "anteroom=$BUILD/cmd/anteroom-turn/anteroom-turn"; fi
for a in "$@"; do
  label=${a%%=*}
  read -r bin flags <<<"${a#*=}"
  [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 1; }
  servers+=("$label")
  BIN[$label]=$bin
  FLAGS[$label]=${flags:-}
done
TMP=$(mktemp -d /tmp/ar-alloc-ab.XXXXXX)
# shellcheck source=bench/turn/lib.sh
. "$ROOT/bench/turn/lib.sh"

start_server() { # start_server <label>: sets SRV
  if [ "$1" = coturn ]; then
    rm -rf "$TMP/coturn" && mkdir -p "$TMP/coturn"
    turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$PORT" \
      --min-port="$MIN_PORT" --max-port="$MAX_PORT" --realm=bench --lt-cred-mech --user=bench:bench \
      --allow-loopback-peers --no-cli --no-dtls --no-tls --no-multicast-peers \
      --userdb="$TMP/coturn/turndb" --pidfile="$TMP/coturn/turn.pid" \
      --log-file="$TMP/coturn/turn.log" --no-stdout-log --simple-log >"$TMP/srv.log" 2>&1 &
  else
    # shellcheck disable=SC2086 # FLAGS: words given after the binary
    "${BIN[$1]}" ${FLAGS[$1]} --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$PORT" \
      --min-port "$MIN_PORT" --max-port "$MAX_PORT" --realm bench --user bench:bench \
      --allow-loopback-peers --no-tls >"$TMP/srv.log" 2>&1 &
  fi
  SRV=$!
  PIDS+=("$SRV")
  for _ in $(seq 100); do
    ss -Hlnu "sport = :$PORT" | grep -q . && return 0
    sleep 0.1
  done
  echo "$1 did not start: $(tail -1 "$TMP/srv.log")" >&2
  return 1
}

cpu_ns() { # CPU time of every thread of process $1, in ns
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'
}

ctxsw() { # context switches (voluntary, involuntary) of every thread of process $1
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2} END {print v + 0, n + 0}'
}

"$TL" peer --listen "127.0.0.1:$PEER_PORT" --secs 3600 >/dev/null 2>&1 &
PIDS+=($!)
declare -A CPU
net=20
echo "alloc_ab: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $N allocations x $ROUNDS rounds ($WHAT); relay ports $MIN_PORT-$MAX_PORT"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${servers[@]}"; do
    start_server "$s" || exit 1
    sleep 0.3
    net=$((net + 1))
    c0=$(cpu_ns "$SRV") s0=$(ctxsw "$SRV")
    timeout 120 "$TL" turn --server "127.0.0.1:$PORT" --peer "127.0.0.1:$PEER_PORT" \
      --allocs "$N" --window 64 --no-data "${ONLY[@]}" --hold 5 --server-pid "$SRV" \
      --bind "127.$net.0.1" --spread "$N" >"$TMP/tl.out" 2>&1 &
    tl=$!
    for _ in $(seq 6000); do
      grep -qs "^$UNTIL" "$TMP/tl.out" && break
      kill -0 "$tl" 2>/dev/null || break
      sleep 0.02
    done
    c1=$(cpu_ns "$SRV") s1=$(ctxsw "$SRV")
    kill -0 "$SRV" 2>/dev/null || echo "  ($s exited during the run)"
    stop_pid "$tl"
    stop_pid "$SRV"
    line=$(grep '^ALLOC' "$TMP/tl.out")
    [ -n "$line" ] && [ "$UNTIL" = BIND ] && line="$line $(grep '^BIND' "$TMP/tl.out")"
    [ -n "$line" ] || echo "  (client output: $(tail -c 300 "$TMP/tl.out" | tr '\n' ' '); server: $(tail -c 300 "$TMP/srv.log" | tr '\n' ' '))"
    ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
    v=$(awk -v a="$c0" -v b="$c1" -v n="${ok:-0}" 'BEGIN {if (n > 0) printf "%.2f", (b - a) / 1000 / n}')
    sw=$(awk -v a="$s0" -v b="$s1" -v n="${ok:-0}" 'BEGIN {split(a, x, " "); split(b, y, " ");
      if (n > 0) printf "%.3f/%.3f", (y[1] - x[1]) / n, (y[2] - x[2]) / n}')
    echo "round $r $s ${line:-no ALLOC line} schedstat_us_per_alloc=${v:-n/a} ctxsw_per_alloc=${sw:-n/a}"
    [ -n "$v" ] && CPU[$s]="${CPU[$s]:-} $v"
  done
done
base=$(median "${CPU[coturn]:-}" 1)
echo "median CPU us per $WHAT (ratio to coturn):"
for s in "${servers[@]}"; do
  m=$(median "${CPU[$s]:-}" 1)
  awk -v s="$s" -v m="$m" -v b="$base" -v all="${CPU[$s]:-}" \
    'BEGIN {printf "  %-12s %6.1f  %.3f   (runs:%s)\n", s, m, (b > 0 ? m / b : 0), all}'
done
