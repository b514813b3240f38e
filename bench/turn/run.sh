#!/usr/bin/env bash
# TURN relay benchmark: Debian's coturn, anteroom-turn and a bare recvmmsg/sendmmsg forwarder
# (also run with --gso: the same plus UDP GSO, as anteroom-turn sends), in the same run, under the same load client (ar-turnload) and the same echo
# peer, all on loopback. Prints one side-by-side table and the ratios issue 2 targets.
#
# Usage: bench/turn/run.sh            (about 2 minutes; every step is bounded by `timeout`)
# Env:   BENCH_SECS (measurement window, s, default 3), BENCH_ROUNDS (default 3: medians of 3),
#        BENCH_PORT (first port, default 34700),
#        AR_BUILD (build dir, default build/default), BENCH_TURN_BIN (daemon binary) and
#        BENCH_TURN_LABEL (what to call it in the report; default: this tree's commit),
#        (not ANTEROOM_TURN_*: anteroom-turn reads those as its own configuration),
#        BENCH_SERVERS (default "coturn anteroom bare bare-gso"),
#        BENCH_TESTS (default every packet test: udp.160 udp.1200 tcp.160 tcp.1200 tls.160
#        tls.1200 rate; fewer for a quicker look),
#        BENCH_PARTS (default "data alloc": "alloc" alone runs only the allocation and RSS part,
#        about a minute; "data" alone only the packet part).
#
# What is measured, and why this way:
# - CPU is the server's own utime+stime from /proc/<pid>/stat, read by the load client at the
#   edges of the measurement window, divided by the packets the server relayed in it (each echo
#   the client gets back was relayed twice: client->peer and peer->client).
# - "Flat out" is a closed loop (16 allocations x 8 packets in flight), so every server runs at
#   the rate it can sustain on this shared machine, with the client and peer on the same cores.
# - RTT is measured at a fixed offered rate, well below every server's capacity.
# - RSS per allocation is the server's VmRSS growth over a fresh start divided by the allocations
#   held, at 1k, 5k and 15k (client processes of at most 5k sockets: 20,000 open files each).
set -uo pipefail

# shellcheck source=bench/turn/netns.sh
. "$(dirname "$0")/netns.sh" "$@"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${AR_BUILD:-$ROOT/build/default}
TL=$BUILD/bench/turn/ar-turnload
BF=$BUILD/bench/turn/ar-bareforward
AT=${BENCH_TURN_BIN:-$BUILD/cmd/anteroom-turn/anteroom-turn}
SECS=${BENCH_SECS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
PORT=${BENCH_PORT:-34700}
SERVERS=${BENCH_SERVERS:-coturn anteroom bare bare-gso}
ALL_TESTS="udp.160 udp.1200 tcp.160 tcp.1200 tls.160 tls.1200 rate"
TESTS=${BENCH_TESTS:-$ALL_TESTS}
PARTS=${BENCH_PARTS:-data alloc}
FLAT_ALLOCS=16
INFLIGHT=8
RATE=20000
RATE_ALLOCS=64
STAGES=(1000 4000 5000 5000) # cumulative: 1k, 5k, 10k, 15k allocations held
PEER_PORT=$PORT
TMP=$(mktemp -d /tmp/ar-bench-turn.XXXXXX)
# shellcheck source=bench/turn/lib.sh
. "$ROOT/bench/turn/lib.sh"
declare -A R    # results: R[server,key]
declare -A WHY  # n/a reasons: WHY[server,key]
NET=10 # each client run takes its source addresses from its own 127.NET.0.0/16

for bin in "$TL" "$BF"; do
  [ -x "$bin" ] || { echo "missing $bin: run cmake --build --preset default first" >&2; exit 1; }
done

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=bench -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

# start_server <name> <udp/tcp port>: sets SRV_PID; the TLS port is the next one.
start_server() {
  local name=$1 p=$2 log=$TMP/$1.log
  SRV_PID=
  case $name in
  coturn)
    coturn_conf "$TMP/coturn" "$p" "tls-listening-port=$((p + 1))" "cert=$TMP/cert.pem" \
      "pkey=$TMP/key.pem"
    turnserver -c "$TMP/coturn/turn.conf" >"$log" 2>&1 &
    ;;
  anteroom)
    [ -x "$AT" ] || { WHY[$name,all]="anteroom-turn not built ($AT)"; return 1; }
    "$AT" --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$p" \
      --tls-listening-port $((p + 1)) --min-port 10000 --max-port 29999 --realm bench \
      --user bench:bench --allow-loopback-peers --cert "$TMP/cert.pem" --pkey "$TMP/key.pem" \
      >"$log" 2>&1 &
    ;;
  bare)
    "$BF" --listen "127.0.0.1:$p" --peer "127.0.0.1:$PEER_PORT" >"$log" 2>&1 &
    ;;
  bare-gso)
    "$BF" --gso --listen "127.0.0.1:$p" --peer "127.0.0.1:$PEER_PORT" >"$log" 2>&1 &
    ;;
  esac
  SRV_PID=$!
  PIDS+=("$SRV_PID")
  if ! wait_port udp "$p" || ! kill -0 "$SRV_PID" 2>/dev/null; then
    WHY[$name,all]="$name did not start (see its log: $(tail -1 "$log" | cut -c1-80))"
    stop_pid "$SRV_PID"
    return 1
  fi
  [[ $name == bare* ]] || wait_port tcp "$p" || true
  return 0
}

# data_run <server> <pid> <port> <transport> <size> [rate]: one flat-out or fixed-rate run. Each
# figure is appended to R[server,key.metric.all]; the report shows the median over the rounds.
data_run() {
  local name=$1 pid=$2 port=$3 tr=$4 size=$5 rate=${6:-0} key mode=turn out allocs=$FLAT_ALLOCS
  local res m
  key=$tr.$size
  [ "$rate" != 0 ] && key=rate && allocs=$RATE_ALLOCS
  [ -n "${WHY[$name,$key]:-}" ] && return # failed in an earlier round: not worth retrying
  [ "$tr" = tls ] && port=$((port + 1))
  [[ $name == bare* ]] && mode=raw
  NET=$((NET + 1))
  out=$(timeout $((SECS + 60)) "$TL" $mode --server "127.0.0.1:$port" \
    --peer "127.0.0.1:$PEER_PORT" --transport "$tr" --size "$size" --allocs "$allocs" \
    --inflight $INFLIGHT --rate "$rate" --warmup 1 --secs "$SECS" --server-pid "$pid" \
    --bind "127.$NET.0.1" --spread "$allocs" 2>"$TMP/err")
  res=$(grep '^RESULT' <<<"$out")
  if [ -z "$res" ] || [ "$(field "$res" failed)" != 0 ] || [ "$(field "$res" recv)" = 0 ]; then
    echo "  $name $key failed: $res" >&2
    WHY[$name,$key]="$tr failed: $( (grep -h . "$TMP/err"; echo "$out") | head -1 | cut -c1-70)"
    return
  fi
  echo "  $name $key: $res" >&2
  for m in relayed_pps:pps cpu_us_per_pkt:cpu srv_cpu_pct:srvpct rtt_p50_us:p50 rtt_p99_us:p99 \
    loss:loss; do
    R[$name,$key.${m#*:}.all]+="$(field "$res" "${m%%:*}") "
  done
}

# data_tests: every server runs at once on its own ports, and the runs interleave (each round
# starts with the next server), so that the other tenants of this shared machine weigh on all
# servers alike; each figure is the median of ROUNDS runs.
data_tests() {
  local name port r i t tr size k srv=()
  declare -A pid_of port_of
  port=$((PORT + 10))
  for name in $SERVERS; do
    if start_server "$name" "$port"; then
      pid_of[$name]=$SRV_PID
      port_of[$name]=$port
      srv+=("$name")
    fi
    port=$((port + 10))
  done
  for name in "${srv[@]}"; do
    [[ $name == bare* ]] || continue
    for t in tcp.160 tcp.1200 tls.160 tls.1200; do
      WHY[$name,$t]="UDP only: it is the physical limit of the UDP path"
    done
  done
  for r in $(seq "$ROUNDS"); do
    echo "== round $r of $ROUNDS" >&2
    for t in $TESTS; do
      tr=${t%.*} size=${t#*.}
      [ "$t" = rate ] && tr=udp size=160
      for i in "${!srv[@]}"; do
        name=${srv[$(((i + r) % ${#srv[@]}))]}
        [ -n "${WHY[$name,$t]:-}" ] && continue
        if [ "$t" = rate ]; then
          data_run "$name" "${pid_of[$name]}" "${port_of[$name]}" udp 160 $RATE
        else
          data_run "$name" "${pid_of[$name]}" "${port_of[$name]}" "$tr" "$size"
        fi
      done
    done
  done
  for name in "${srv[@]}"; do stop_pid "${pid_of[$name]}"; done
  for k in "${!R[@]}"; do
    [[ $k == *.all ]] && R[${k%.all}]=$(median "${R[$k]}")
  done
}

# alloc_tests <server> <port>: allocation rate, CPU and RSS per allocation on a fresh server.
alloc_tests() {
  local name=$1 port=$2 rss0 total=0 secs=0 cpu=0 cpu2=0 n i f pid out line clients=()
  if [[ $name == bare* ]]; then
    WHY[$name,alloc]="no allocations: nothing to allocate"
    return
  fi
  start_server "$name" "$port" || return
  sleep 0.5
  rss0=$(rss_kb "$SRV_PID")
  R[$name,rss0]=$rss0
  for i in "${!STAGES[@]}"; do
    n=${STAGES[$i]}
    NET=$((NET + 1))
    f=$TMP/alloc.$i
    # Hold the allocations until this function stops the client; 120 s is the backstop.
    timeout 180 "$TL" turn --server "127.0.0.1:$port" --peer "127.0.0.1:$PEER_PORT" \
      --allocs "$n" --window 64 --no-data --hold 120 --server-pid "$SRV_PID" \
      --bind "127.$NET.0.1" --spread "$n" >"$f" 2>"$f.err" &
    pid=$!
    clients+=("$pid")
    PIDS+=("$pid")
    for _ in $(seq 600); do
      grep -qE '^(READY|FAILED)' "$f" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if ! grep -q '^READY' "$f"; then
      WHY[$name,alloc]="at $((total + n)) allocations: $( (grep -h . "$f.err" "$f") | head -1 | cut -c1-60)"
      break
    fi
    line=$(grep '^ALLOC' "$f")
    echo "  $name $line" >&2
    total=$((total + $(field "$line" ok)))
    secs=$(awk -v a="$secs" -v b="$(field "$line" secs)" 'BEGIN {print a + b}')
    cpu=$((cpu + $(field "$line" srv_cpu_us)))
    cpu2=$((cpu2 + $(field "$(grep '^BIND' "$f")" srv_cpu_us)))
    sleep 0.5 # let the server finish what the last answers started
    R[$name,rss.$total]=$(awk -v r="$(rss_kb "$SRV_PID")" -v r0="$rss0" -v n="$total" \
      'BEGIN {printf "%.1f", (r - r0) / n}')
  done
  if [ "$total" -gt 0 ]; then
    R[$name,allocs_per_s]=$(awk -v n="$total" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
    R[$name,cpu_alloc]=$(awk -v c="$cpu" -v n="$total" 'BEGIN {printf "%.1f", c / n}')
    R[$name,cpu_setup]=$(awk -v c="$((cpu + cpu2))" -v n="$total" 'BEGIN {printf "%.1f", c / n}')
  fi
  for pid in "${clients[@]}"; do stop_pid "$pid"; done
  stop_pid "$SRV_PID"
}

echo "TURN relay benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r)" >&2
"$TL" peer --listen "127.0.0.1:$PEER_PORT" --secs 1200 >"$TMP/peer.log" 2>&1 &
PEER_PID=$!
PIDS+=("$PEER_PID")
wait_port udp "$PEER_PORT" || { echo "echo peer did not start" >&2; exit 1; }

for s in coturn anteroom bare bare-gso; do
  [[ " $SERVERS " == *" $s "* ]] || WHY[$s,all]="not run (BENCH_SERVERS)"
  for t in $ALL_TESTS; do
    [[ " $TESTS " == *" $t "* ]] || WHY[$s,$t]="not run (BENCH_TESTS)"
  done
done
if [[ " $PARTS " == *" data "* ]]; then
  data_tests
else
  for s in coturn anteroom bare bare-gso; do
    for t in udp.160 udp.1200 tcp.160 tcp.1200 tls.160 tls.1200 rate; do
      WHY[$s,$t]="not run (BENCH_PARTS)"
    done
  done
fi
if [[ " $PARTS " == *" alloc "* ]]; then
  for s in $SERVERS; do
    echo "== $s: allocations" >&2
    alloc_tests "$s" $((PORT + 40))
  done
else
  for s in coturn anteroom bare bare-gso; do WHY[$s,alloc]="not run (BENCH_PARTS)"; done
fi
stop_pid "$PEER_PID"

. "$(dirname "$0")/report.sh"
report
