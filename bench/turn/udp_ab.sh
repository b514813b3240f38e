#!/usr/bin/env bash
# CPU per relayed UDP packet, interleaved: any number of servers (anteroom-turn binaries, with or
# without extra flags, coturn, the bare forwarder with or without GSO), each given ROUNDS flat-out
# runs of run.sh's UDP test (16 allocations x 8 packets in flight, ChannelData to the echo peer)
# against a freshly started server. The runs take turns (A, B, C, A, B, C, ...), so the shared
# machine's other load weighs on all of them alike; every round starts with the next server.
# Prints every run's CPU figure, then per server and size the median CPU us per relayed packet
# and its ratio to the first server's median from the same invocation: the command for
# before/after comparisons of the UDP relay path (run.sh's table is the one the issue reads).
# A run that fails is warned of at once and left out of the medians; the end says how many.
#
# Usage: bench/turn/udp_ab.sh [LABEL=SERVER ...]
#        SERVER: an anteroom-turn binary, optionally followed by a comma-separated list of extra
#        flags ("new=build/x/anteroom-turn,--workers,1"), or coturn, bare or bare-gso.
#        Default: coturn anteroom=build/default/cmd/anteroom-turn/anteroom-turn bare-gso.
# Env:   BENCH_ROUNDS (default 5), BENCH_SECS (window, default 3), BENCH_SIZES (default
#        "160 1200"), BENCH_PORT (default 34800), AR_BUILD (build dir, default build/default),
#        BENCH_RATE (default 0: flat out; N: run.sh's fixed-rate test instead, N packets/s offered
#        over 64 allocations, whose RTT percentiles are then printed too).
set -uo pipefail
# shellcheck source=bench/turn/netns.sh
. "$(dirname "$0")/netns.sh" "$@"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${AR_BUILD:-$ROOT/build/default}
TL=$BUILD/bench/turn/ar-turnload
BF=$BUILD/bench/turn/ar-bareforward
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECS:-3}
SIZES=${BENCH_SIZES:-160 1200}
PORT=${BENCH_PORT:-34800}
PEER_PORT=$PORT
RATE=${BENCH_RATE:-0}
ALLOCS=16
[ "$RATE" != 0 ] && ALLOCS=64
for bin in "$TL" "$BF"; do
  [ -x "$bin" ] || { echo "missing $bin: run cmake --build --preset default first" >&2; exit 1; }
done
if [ $# -eq 0 ]; then
  set -- coturn "anteroom=$BUILD/cmd/anteroom-turn/anteroom-turn" bare-gso
fi
labels=()
declare -A SPEC
for a in "$@"; do
  case $a in
  coturn | bare | bare-gso) label=$a spec=$a ;;
  *=*) label=${a%%=*} spec=${a#*=} ;;
  *) echo "not LABEL=BINARY, coturn, bare or bare-gso: $a" >&2; exit 2 ;;
  esac
  if [[ $spec != coturn && $spec != bare && $spec != bare-gso ]]; then
    [ -x "${spec%%,*}" ] || { echo "not an executable: ${spec%%,*}" >&2; exit 1; }
  fi
  labels+=("$label")
  SPEC[$label]=$spec
done
if [[ " ${SPEC[*]} " == *" coturn "* ]] && ! command -v turnserver >/dev/null; then
  echo "coturn (turnserver) is not installed" >&2
  exit 1
fi
TMP=$(mktemp -d /tmp/ar-udp-ab.XXXXXX)
# shellcheck source=bench/turn/lib.sh
. "$ROOT/bench/turn/lib.sh"

# start <label> <port>: sets SRV to the server's PID.
start() {
  local spec=${SPEC[$1]} p=$2 extra=()
  case $spec in
  coturn)
    coturn_conf "$TMP/coturn" "$p" no-tls
    turnserver -c "$TMP/coturn/turn.conf" >"$TMP/srv.log" 2>&1 &
    ;;
  bare) "$BF" --listen "127.0.0.1:$p" --peer "127.0.0.1:$PEER_PORT" >"$TMP/srv.log" 2>&1 & ;;
  bare-gso) "$BF" --gso --listen "127.0.0.1:$p" --peer "127.0.0.1:$PEER_PORT" >"$TMP/srv.log" 2>&1 & ;;
  *)
    IFS=, read -r -a extra <<<"${spec#*,}"
    [[ $spec == *,* ]] || extra=()
    "${spec%%,*}" --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$p" \
      --min-port 10000 --max-port 29999 --realm bench --user bench:bench \
      --allow-loopback-peers --no-tls "${extra[@]}" >"$TMP/srv.log" 2>&1 &
    ;;
  esac
  SRV=$!
  PIDS+=("$SRV")
  wait_port udp "$p" && kill -0 "$SRV" 2>/dev/null
}

"$TL" peer --listen "127.0.0.1:$PEER_PORT" --secs 100000 >/dev/null 2>&1 &
PIDS+=($!)
wait_port udp "$PEER_PORT" || { echo "the echo peer did not start" >&2; exit 1; }
echo "UDP relay A/B, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$RATE" = 0 ]; then
  echo "flat out: 16 allocations x 8 packets in flight, ${SECS} s windows, $ROUNDS interleaved rounds"
else
  echo "fixed rate: $RATE pkt/s offered over 64 allocations, ${SECS} s windows, $ROUNDS interleaved rounds"
fi
declare -A CPU P50 P99 FAILED
nruns=0 nfailed=0
# failed <label> <size> <why>: a run that gives no figure is said at once and counted, so that
# the medians below say over how many runs they are.
failed() {
  echo "  warning: round $r $1 $2 B failed ($3); left out of the medians" >&2
  FAILED[$1,$2]=$((${FAILED[$1,$2]:-0} + 1))
  nfailed=$((nfailed + 1))
}
net=20
for r in $(seq "$ROUNDS"); do
  n=${#labels[@]}
  for k in $(seq 0 $((n - 1))); do
    label=${labels[$(((k + r - 1) % n))]}
    for size in $SIZES; do
      port=$((PORT + 10))
      net=$((net + 1))
      nruns=$((nruns + 1))
      if ! start "$label" "$port"; then
        failed "$label" "$size" "the server did not start: $(tail -1 "$TMP/srv.log")"
        stop_pid "$SRV"
        continue
      fi
      mode=turn
      [[ ${SPEC[$label]} == bare* ]] && mode=raw
      out=$(timeout $((SECS + 60)) "$TL" $mode --server "127.0.0.1:$port" \
        --peer "127.0.0.1:$PEER_PORT" --transport udp --size "$size" --allocs $ALLOCS \
        --inflight 8 --rate "$RATE" --warmup 1 --secs "$SECS" --server-pid "$SRV" \
        --bind "127.$net.0.1" --spread $ALLOCS 2>"$TMP/tl.err" | grep '^RESULT')
      stop_pid "$SRV"
      cpu=$(field "$out" cpu_us_per_pkt)
      pps=$(field "$out" relayed_pps)
      if [ -z "$cpu" ] || [ "${pps:-0}" = 0 ]; then
        failed "$label" "$size" "${out:+nothing relayed}${out:-no RESULT line: $(tail -1 "$TMP/tl.err")}"
        continue
      fi
      p50=$(field "$out" rtt_p50_us)
      p99=$(field "$out" rtt_p99_us)
      printf '  round %d %-12s %5d B  %7s us/pkt  %7s relayed pkt/s  RTT p50 %s p99 %s us\n' \
        "$r" "$label" "$size" "$cpu" "$pps" "$p50" "$p99"
      CPU[$label,$size]+="$cpu "
      P50[$label,$size]+="$p50 "
      P99[$label,$size]+="$p99 "
    done
  done
done
echo
printf '%-14s' "median us/pkt"
for size in $SIZES; do printf '%10s %9s' "${size} B" "/ ${labels[0]}"; done
echo
for label in "${labels[@]}"; do
  printf '%-14s' "$label"
  for size in $SIZES; do
    m=$(median "${CPU[$label,$size]:-}")
    b=$(median "${CPU[${labels[0]},$size]:-}")
    ratio=$(awk -v m="$m" -v b="$b" 'BEGIN {if (m != "" && b > 0) printf "%.2f", m / b; else print "n/a"}')
    printf '%10s %9s' "${m:-n/a}" "$ratio"
  done
  echo
done
if [ "$RATE" != 0 ]; then
  echo
  printf '%-14s' "median RTT us"
  for size in $SIZES; do printf '%10s %9s' "${size} B p50" "p99"; done
  echo
  for label in "${labels[@]}"; do
    printf '%-14s' "$label"
    for size in $SIZES; do
      printf '%10s %9s' "$(median "${P50[$label,$size]:-}")" "$(median "${P99[$label,$size]:-}")"
    done
    echo
  done
fi
if [ "$nfailed" != 0 ]; then
  echo
  printf 'warning: %d of %d runs failed and are left out of the medians:' "$nfailed" "$nruns"
  for label in "${labels[@]}"; do
    for size in $SIZES; do
      [ -n "${FAILED[$label,$size]:-}" ] && printf ' %s %s B x%d;' "$label" "$size" "${FAILED[$label,$size]}"
    done
  done
  echo
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
