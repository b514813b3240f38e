#!/usr/bin/env bash
# The signalling benchmark of issue 3: one load generator (ar_bench_sigload) on loopback against
#   bare      the bare relay (bare_relay.c: one recv, one writev; the physical limit)
#   node-ws   a minimal Node `ws` room relay (node/room_relay.js)
#   peerjs    the PeerJS server (npm `peer`, node/peerjs_server.js)
#   anteroom  anteroom-signal with its NATS server (the workers and nats-server are both counted)
# and prints them side by side with the issue's ratios: connections held, RSS per connection,
# connects/s and CPU per connect (anteroom also with TLS), CPU per relayed message and latency
# p50/p99 at fixed offered rates, call set-ups per second; then what a hop through NATS between
# two nodes adds, a scale run holding SCALE connections on one node of SCALE_WORKERS workers, and
# a node killed under its sessions while its clients resume on the other (failover).
# Every server starts fresh for each measurement and is stopped by its PID.
#
# Usage: bench/signal/full.sh [smoke]      (smoke: small numbers, a few seconds per phase)
# Environment (defaults): N=10000 idle connections, RATES="2000 8000" msg/s, SECS=5, CALLS=2000,
#   CALL_PROCS=4, HOP_RATE=2000, HOP_ROUNDS=3 (same/cross interleaved; medians), SCALE=200000, SCALE_WORKERS=12, SCALE_PROCS=12 (0: no scale run),
#   SCALE_HOLD=70 (seconds the scale run holds its connections after measuring, then counts them),
#   SCALE_INFLIGHT=1 (connections each client process of the scale run has opening at once: -f; a
#   node behind on its bus refuses with 4016 busy, which the load generator retries after a
#   back-off and counts as refused=, docs/performance.md "Scale run with admission control"),
#   SIGNAL_ARGS (extra arguments for anteroom-signal, e.g. "--log-level info"),
#   SERVERS="bare node-ws peerjs anteroom" (also "anteroom-w2": a node of two workers whose pairs
#   all connect to worker 0's own port, --worker-port, so every frame is relayed on that worker
#   and copied to its backup on the other; "anteroom-w4": the same with four workers, so the
#   backups of worker 0's sessions are spread over three; "anteroom-x2": two workers with each pair's members
#   on the two workers, so every frame also crosses the bus; "anteroom-r4": four workers on the
#   shared port, where the kernel places each connection, so three pairs in four are split, as
#   without placement; "anteroom-p4": four workers, each pair on one worker's own port, the pairs
#   spread over the four, as the app's placement by clinic puts them; CPU counts all workers and
#   nats-server),
#   RATE_PAIRS (the relay phase's pairs: RATE/20 by default, 10 messages/s per connection),
#   RATE_KIND (what the rate measurements relay: "offer", the default, of sigload's -S bytes, or
#   "candidate": host candidates of about 110 bytes, every connection's 16th message an offer, as
#   anteroom takes at most 64 candidates per negotiation),
#   RELAY_ROUNDS (the "relay" phase's servers and rates run that many times over, interleaved,
#   1 by default: report.sh gives each ratio per round and their median, which the load of this
#   shared machine moves less than one round's),
#   PHASES="servers hop scale failover" (smoke: without failover) (or "relay": only the CPU
#   per relayed message and latency at RATES, the relay part of "servers"; or "idle": anteroom's
#   idle line, plain and TLS, with each of IDLE_WORKERS="1 12" workers; IDLE_HOLD=S holds the
#   sessions S seconds more, past the first ping, and says their RSS again); "failover": two
#   nodes of each of FAILOVER_WORKERS=1 workers hold FAILOVER_N=10000 sessions, a pair per room
#   split over the nodes (FAILOVER_SAME=1: both members on the node killed), node A is killed
#   with kill -9 and its clients resume on node B, their first attempt 0.5 s + [0,
#   FAILOVER_JITTER=2] s after the close, at most FAILOVER_INFLIGHT=1000 at once in each of
#   FAILOVER_PROCS=1 client processes (more than 20,000 sessions need more: 20,000 files each;
#   about 20 s at the default size); a client not resumed FAILOVER_BOUND=60 s after the first
#   close counts as lost (the grace period is 120 s); FAILOVER_PERF=S profiles B's workers
#   (perf, flat) for the storm's first S seconds (FAILOVER_PERF_GRAPH=1: with call graphs, kept
#   in the logs as failover.perf with AR_KEEP_LOGS=1; a build with frame pointers shows them),
#   FAILOVER_PERF_CHECK=S profiles the whole machine (perf -a) over the first S seconds of each
#   of the two relay checks after the storm (kept as check1.perf and check2.perf),
#   AR_BUILD=build/default,
#   SIGNAL_BIN (the anteroom-signal to measure), SIGNAL_TLS_ALT (below).
# Needs: cmake --build --preset default; nats-server; npm (it runs npm ci in bench/signal/node).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

has() { [[ " $2 " == *" $1 "* ]]; }
smoke=0
[ "${1:-}" = smoke ] && smoke=1
if [ $smoke = 1 ]; then
  : "${N:=400}" "${RATES:=400}" "${SECS:=2}" "${CALLS:=40}" "${CALL_PROCS:=2}" "${HOP_RATE:=200}"
  : "${HOP_ROUNDS:=1}" "${SCALE:=2000}" "${SCALE_WORKERS:=2}" "${SCALE_PROCS:=2}" "${SCALE_HOLD:=1}"
  # not failover: about 12 s whatever its size (the death is noticed after 3 s, and the phase
  # waits 3 s before and after), where the smoke's other phases take a few seconds each
  : "${PHASES:=servers hop scale}"
fi
N=${N:-10000}
RATES=${RATES:-2000 8000}
SECS=${SECS:-5}
CALLS=${CALLS:-2000}
CALL_PROCS=${CALL_PROCS:-4}
HOP_RATE=${HOP_RATE:-2000}
HOP_ROUNDS=${HOP_ROUNDS:-3}
RELAY_ROUNDS=${RELAY_ROUNDS:-1}
RATE_KIND=${RATE_KIND:-offer}
SCALE=${SCALE:-200000}
SCALE_WORKERS=${SCALE_WORKERS:-12}
SCALE_PROCS=${SCALE_PROCS:-12}
SCALE_INFLIGHT=${SCALE_INFLIGHT:-1}
SCALE_HOLD=${SCALE_HOLD:-70}
SERVERS=${SERVERS:-bare node-ws peerjs anteroom}
PHASES=${PHASES:-servers hop scale failover}
IDLE_WORKERS=${IDLE_WORKERS:-1 12}
IDLE_HOLD=${IDLE_HOLD:-0}
FAILOVER_N=${FAILOVER_N:-10000}
FAILOVER_WORKERS=${FAILOVER_WORKERS:-1}
FAILOVER_JITTER=${FAILOVER_JITTER:-2}
FAILOVER_SAME=${FAILOVER_SAME:-0}
FAILOVER_INFLIGHT=${FAILOVER_INFLIGHT:-1000}
FAILOVER_PROCS=${FAILOVER_PROCS:-1}
FAILOVER_BOUND=${FAILOVER_BOUND:-60}
FAILOVER_PERF=${FAILOVER_PERF:-0}
FAILOVER_PERF_CHECK=${FAILOVER_PERF_CHECK:-0}
build=${AR_BUILD:-build/default}
load=$build/bench/signal/ar_bench_sigload
bare=$build/bench/signal/ar_bench_bare_relay
signal=${SIGNAL_BIN:-$build/cmd/anteroom-signal/anteroom-signal}
# Another anteroom-signal binary for one more TLS line: SIGNAL_TLS_ALT=NAME=PATH (another branch's
# build, say).
SIGNAL_TLS_ALT=${SIGNAL_TLS_ALT:-}
node_dir=bench/signal/node
for f in "$load" "$bare" "$signal"; do
  [ -x "$f" ] || { echo "full.sh: $f is missing (cmake --build --preset default)" >&2; exit 2; }
done
command -v nats-server >/dev/null || { echo "full.sh: nats-server is missing (scripts/deps)" >&2; exit 2; }
if has node-ws "$SERVERS" || has peerjs "$SERVERS"; then
  if [ ! -d "$node_dir/node_modules/ws" ] || [ ! -d "$node_dir/node_modules/peer" ]; then
    (cd "$node_dir" && timeout 180 npm ci --no-audit --no-fund >/dev/null 2>&1)
  fi
  if [ ! -d "$node_dir/node_modules/ws" ] || [ ! -d "$node_dir/node_modules/peer" ]; then
    echo "full.sh: npm ci in $node_dir failed (offline?)" >&2
    exit 2
  fi
fi

# A process may hold 20,000 files here: the benchmark's own processes ask for all of them.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/ar-sigbench.XXXXXX)
results=$work/results
: >"$results"
"$load" keygen "$work/pub" "$work/sec" || exit 1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null || exit 1

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  if [ -n "${AR_KEEP_LOGS:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$((21000 + RANDOM % 2000))
srcbase=$((RANDOM % 200))
nextport() { port=$((port + 1)); }
nextsrc() { srcbase=$(((srcbase + 1) % 250)); }

wait_port() { # wait_port PORT: until something accepts on it (15 s)
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

stop() { # stop PID...: SIGTERM, then SIGKILL after 5 s
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for p in "$@"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
}

spids="" bpids="" started=() failed=()
# start_server NAME [WORKERS [TLS]]: starts it on $port; sets spids (measured processes),
# bpids (anteroom's NATS servers) and started (everything to stop).
start_server() {
  local name=$1 workers=${2:-1} tls=${3:-0} wargs=()
  spids="" bpids="" started=()
  nextport
  lport=$port # where the load generator connects
  case $name in
  bare)
    "$bare" "$port" >"$work/$name.log" 2>&1 &
    spids=$! started=($!) ;;
  node-ws)
    node "$node_dir/room_relay.js" "$port" >"$work/$name.log" 2>&1 &
    spids=$! started=($!) ;;
  peerjs)
    node "$node_dir/peerjs_server.js" "$port" >"$work/$name.log" 2>&1 &
    spids=$! started=($!) ;;
  anteroom | anteroom2 | anteroom-w2 | anteroom-w4 | anteroom-x2 | anteroom-r4 | anteroom-p4)
    local np=$((port + 1000)) tlsargs=()
    if [ "$name" = anteroom-w2 ] || [ "$name" = anteroom-w4 ]; then
      workers=${name#anteroom-w} lport=$((port + 2000))
      wargs=(--worker-port "$lport")
    elif [ "$name" = anteroom-x2 ]; then
      # each pair's members on the two workers' own ports (the load generator splits a pair
      # over two ports): every frame crosses the bus, and its numbered copy too
      workers=2 lport="$((port + 2000)),$((port + 2001))"
      wargs=(--worker-port "$((port + 2000))")
    elif [ "$name" = anteroom-r4 ]; then
      workers=4 # the shared port: SO_REUSEPORT places each connection
    elif [ "$name" = anteroom-p4 ]; then
      # every worker's own port; the rate measurement's -m (rate_args) keeps each pair on one
      workers=4 lport="$((port + 2000)),$((port + 2001)),$((port + 2002)),$((port + 2003))"
      wargs=(--worker-port "$((port + 2000))")
    fi
    nats-server -a 127.0.0.1 -p "$np" >"$work/nats-$port.log" 2>&1 &
    bpids=$! started=($!)
    pids+=("$!")
    wait_port "$np" || { echo "nats-server did not start" >&2; return 1; }
    [ "$tls" = 1 ] && tlsargs=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
    # shellcheck disable=SC2086 # SIGNAL_ARGS: several arguments
    "${bin:-$signal}" --listen 127.0.0.1 --port "$port" --jurisdiction eu --node-name n1 \
      --keys "$work/pub" --origin https://bench.anteroom.invalid --workers "$workers" \
      --max-per-address 0 --nats "nats://127.0.0.1:$np" --log-level warn "${tlsargs[@]}" \
      "${wargs[@]}" ${SIGNAL_ARGS:-} >"$work/signal-$port.log" 2>&1 &
    local sup=$!
    started+=("$sup")
    pids+=("$sup")
    local lp
    for lp in ${lport//,/ }; do
      wait_port "$lp" || { echo "anteroom-signal did not start" >&2; return 1; }
    done
    for _ in $(seq 100); do
      spids=$(tr ' ' '\n' <"/proc/$sup/task/$sup/children" | grep -c .)
      [ "$spids" -ge "$workers" ] && break
      sleep 0.1
    done
    spids=$(tr ' ' ',' <"/proc/$sup/task/$sup/children" | sed 's/,*$//')
    sleep 1.5 # the workers hear each other's heartbeats before sessions need a backup
    return 0 ;;
  esac
  pids+=("${started[@]}")
  wait_port "$port" || { echo "$name did not start" >&2; return 1; }
  return 0
}

dialect() { case $1 in bare) echo raw ;; node-ws) echo ws ;; anteroom*) echo anteroom ;; *) echo "$1" ;; esac; }
# What a shape adds to its rate measurement: p4's pairs each on one of its ports (sigload -m).
rate_args() { [ "$1" = anteroom-p4 ] && echo -m; }

# meter LABEL SERVER ARGS...: one measurement on a fresh server; its RESULT line is kept.
meter() {
  local label=$1 server=$2 workers=1 tls=0 cmd
  shift 2
  [ "$1" = "-t" ] && tls=1
  cmd=$2
  shift 2
  [ $tls = 1 ] && set -- -t "$@"
  case $label in scale*) workers=$SCALE_WORKERS ;; idle-w*) workers=${label#idle-w} workers=${workers%%-*} ;; esac
  start_server "$server" "$workers" "$tls" || { failed+=("$label (start)"); stop "${started[@]}"; return 1; }
  local b=()
  [ -n "$bpids" ] && b=(-B "$bpids")
  nextsrc
  timeout 900 "$load" "$cmd" "$@" -d "$(dialect "$server")" -p "$lport" -s "$spids" "${b[@]}" \
    -K "$work/sec" -l "$label" -b "$srcbase" 2>>"$work/errors" | tee -a "$results" |
    sed 's/^RESULT /  /' >&2
  [ "${PIPESTATUS[0]}" = 0 ] || failed+=("$label $cmd")
  stop "${started[@]}"
}

echo "== signalling benchmark $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
has servers "$PHASES" && for s in $SERVERS; do
  meter "$s" "$s" - idle -n "$N" -P 2
  if [ "$s" = anteroom ]; then
    # connect and upgrade only (no hello: the node closes these after 10 s, 4002), then TLS
    meter anteroom-upgrade anteroom - idle -n "$N" -P 2 -U
    meter anteroom-tls anteroom -t idle -n "$N" -P 2
    if [ -n "$SIGNAL_TLS_ALT" ]; then
      bin=${SIGNAL_TLS_ALT#*=} meter "anteroom-tls-${SIGNAL_TLS_ALT%%=*}" anteroom -t idle -n "$N" -P 2
    fi
  fi
  for r in $RATES; do
    # 10 messages/s per connection: anteroom allows 20/s (protocol.md 4); the same for all.
    # shellcheck disable=SC2046 # rate_args: -m or nothing
    meter "$s@$r" "$s" - rate -r "$r" -k $(((r + 19) / 20)) -T "$SECS" -M "$RATE_KIND" $(rate_args "$s")
  done
  [ "$s" != bare ] && meter "$s" "$s" - calls -c "$CALLS" -P "$CALL_PROCS"
done

# relay: the rate measurements of "servers" alone (a quick before/after of the relay path).
# Round k > 1 labels its lines <server>@<rate>~k (report.sh: the ratios of each round, and their
# median).
has relay "$PHASES" && ! has servers "$PHASES" && for round in $(seq "$RELAY_ROUNDS"); do
  suffix=""
  [ "$round" -gt 1 ] && suffix="~$round"
  for s in $SERVERS; do
    for r in $RATES; do
      # shellcheck disable=SC2046 # rate_args: -m or nothing
      meter "$s@$r$suffix" "$s" - rate -r "$r" -k "${RATE_PAIRS:-$(((r + 19) / 20))}" -T "$SECS" -M "$RATE_KIND" $(rate_args "$s")
    done
  done
done

# idle: anteroom alone, every connection's session in a room (hello and join, a pair per room),
# plain and TLS, on a node of each of IDLE_WORKERS workers (what a held session costs by workers).
if has anteroom "$SERVERS" && has idle "$PHASES"; then
  for w in $IDLE_WORKERS; do
    meter "idle-w$w" anteroom - idle -n "$N" -P 2 -H "$IDLE_HOLD"
    meter "idle-w$w-tls" anteroom -t idle -n "$N" -P 2 -H "$IDLE_HOLD"
  done
fi

# cluster: two nats-servers in one cluster on fresh ports (the hop and failover phases); sets p1
# (the first node's port; p1+1 is the second's), c1 c2 (the servers' client ports), n1 n2 (PIDs).
cluster() {
  nextport
  p1=$port c1=$((port + 1000)) r1=$((port + 2000)) c2=$((port + 1001)) r2=$((port + 2001))
  port=$((port + 2))
  nats-server -a 127.0.0.1 -p "$c1" --cluster_name ar --cluster "nats://127.0.0.1:$r1" \
    --routes "nats://127.0.0.1:$r2" >"$work/nats1-$c1.log" 2>&1 &
  n1=$!
  # the second's monitoring port (m2): what it moves while node B survives a failover
  m2=$((c2 + 3500))
  nats-server -a 127.0.0.1 -p "$c2" -m "$m2" --cluster_name ar --cluster "nats://127.0.0.1:$r2" \
    --routes "nats://127.0.0.1:$r1" >"$work/nats2-$c2.log" 2>&1 &
  n2=$!
  pids+=("$n1" "$n2")
  wait_port "$c1" && wait_port "$c2"
  for _ in $(seq 100); do
    grep -q 'Route connection created' "$work/nats1-$c1.log" 2>/dev/null && break
    sleep 0.1
  done
}
# signode NAME PORT NATSPORT [WORKERS [METRICSPORT]]: a node of its own node-name (so its
# sessions' backups go to another node); prints its supervisor's PID. Log: $work/node-NAME.log.
# METRICSPORT: its workers' operator listeners on METRICSPORT and the ports after it.
signode() {
  local mp=()
  [ -n "${5:-}" ] && mp=(--metrics-port "$5")
  # shellcheck disable=SC2086 # SIGNAL_ARGS: several arguments
  "$signal" --listen 127.0.0.1 --port "$2" --jurisdiction eu --node-name "$1" \
    --keys "$work/pub" --origin https://bench.anteroom.invalid --workers "${4:-1}" \
    --max-per-address 0 --nats "nats://127.0.0.1:$3" --log-level warn "${mp[@]}" ${SIGNAL_ARGS:-} \
    >"$work/node-$1.log" 2>&1 &
  echo $!
}
# metrics_of PORT COUNT: the /metrics of COUNT workers' listeners from PORT, one after another
metrics_of() {
  for i in $(seq 0 $(($2 - 1))); do curl -s "http://127.0.0.1:$(($1 + i))/metrics"; done
}
# metric_sum PORT COUNT TEXT: the sum, over COUNT workers' operator listeners from PORT on, of the
# metric line holding TEXT (one a worker; an unlabelled metric: its name and a space)
metric_sum() {
  metrics_of "$1" "$2" | grep -v '^#' | grep -F "$3" | awk '{s += $NF} END {printf "%d\n", s}'
}
# workers_of SUP COUNT: the node's worker PIDs, comma-separated, once COUNT have started (10 s).
workers_of() {
  local w=""
  for _ in $(seq 100); do
    w=$(tr ' ' '\n' <"/proc/$1/task/$1/children" | grep . | paste -sd,)
    [ "$(echo "$w" | tr ',' '\n' | grep -c .)" -ge "$2" ] && break
    sleep 0.1
  done
  echo "$w"
}

# The NATS hop: two nodes (one worker each) on a two-server NATS cluster; each pair has one
# member on each node, against both members on one node (half of the pairs on each node, so that
# each node carries the same load), at the same offered rate, interleaved HOP_ROUNDS times.
if has anteroom "$SERVERS" && has hop "$PHASES"; then
  cluster
  s1=$(signode h1 "$p1" "$c1")
  s2=$(signode h2 $((p1 + 1)) "$c2")
  pids+=("$s1" "$s2")
  wait_port "$p1" && wait_port $((p1 + 1))
  sleep 2
  w1=$(workers_of "$s1" 1)
  w2=$(workers_of "$s2" 1)
  k=$(((HOP_RATE + 19) / 20))
  for round in $(seq "$HOP_ROUNDS"); do for mode in same cross; do
    ports="$p1,$((p1 + 1))" same=()
    [ $mode = same ] && same=(-m)
    nextsrc
    timeout 300 "$load" rate "${same[@]}" -d anteroom -p "$ports" -s "$w1,$w2" -B "$n1,$n2" -K "$work/sec" \
      -l "hop-$mode-$round" -b "$srcbase" -r "$HOP_RATE" -k "$k" -T "$SECS" 2>>"$work/errors" |
      tee -a "$results" | sed 's/^RESULT /  /' >&2
    [ "${PIPESTATUS[0]}" = 0 ] || failed+=("hop-$mode-$round")
  done; done
  stop "$s1" "$s2" "$n1" "$n2"
fi

# The kernel's side of the loopback TCP a failover runs over: its TCP memory (pages, from
# /proc/net/sockstat) each second into $work/tcpmem while the phase runs, and the counters of
# retransmits and of drops for want of memory, from nstat's history in $work (its own, so that no
# other user of nstat is disturbed). 400,000 sockets over loopback can take the kernel past
# tcp_mem's pressure line, where it shrinks buffers and drops segments the sender then retransmits
# after a timeout.
TCP_COUNTERS="TcpRetransSegs TcpExtTCPLossProbes TcpExtTCPDSACKRecv TcpExtTCPTimeouts
  TcpExtListenOverflows TcpExtTCPMemoryPressures TcpExtTCPMemoryPressuresChrono TcpExtTCPRcvQDrop
  TcpExtTCPAbortOnMemory TcpExtTCPBacklogDrop TcpExtTCPOFODrop TcpExtPruneCalled TcpExtRcvPruned
  TcpExtTCPZeroWindowDrop TcpExtTCPWantZeroWindowAdv TcpExtTCPToZeroWindowAdv"
tcp_watch_start() {
  NSTAT_HISTORY=$work/nstat.hist nstat -n
  while :; do awk '/^TCP:/ {print $NF}' /proc/net/sockstat; sleep 1; done >"$work/tcpmem" &
  tcp_watch=$!
}
# The survivor's nats-server each second (its monitoring port m2): time, messages and bytes in
# and out, into $work/natsvarz; and at each mark (mark NAME) the time, to split it by phase.
nats_watch_start() {
  : >"$work/marks"
  while :; do
    # varz is one field a line: "in_msgs": N,
    curl -s "http://127.0.0.1:$m2/varz" | awk -v t="$(date +%s.%N)" -F'[:,]' '
      /"(in|out)_(msgs|bytes)"/ { gsub(/[" ]/, "", $1); v[$1] = $2 + 0 }
      END { if (length(v) == 4) print t, v["in_msgs"], v["out_msgs"], v["in_bytes"], v["out_bytes"] }'
    sleep 1
  done >"$work/natsvarz" &
  nats_watch=$!
}
mark() { echo "$1 $(date +%s.%N)" >>"$work/marks"; }
# NAME: the survivor's bus messages so far (its workers' operator listeners from $mb), published
# and received by kind, and the record updates its published record messages carried
# ("published updates"), into $work/bus-NAME as "published kind count" lines
bus_counts() {
  metrics_of "$mb" "$fw" | awk '/^anteroom_signal_bus_(published|received)_total\{/ {
      k = $1; gsub(/^anteroom_signal_bus_|_total\{kind="|"\}$/, " ", k); sum[k] += $NF }
      /^anteroom_signal_bus_record_updates_total / { sum["published updates"] += $NF }
      END { for (k in sum) print k, sum[k] }' | awk '{print $1, $2, $3}' | sort >"$work/bus-$1"
}
# LABEL FROM TO: what the survivor's workers published and received between two bus_counts
bus_between() {
  echo "  $1:   $2 to $3: $(join -j1 <(awk '{print $1 "/" $2, $3}' "$work/bus-$2") \
    <(awk '{print $1 "/" $2, $3}' "$work/bus-$3") | awk '{printf "%s %d, ", $1, $3 - $2}' |
    sed 's/, $//')" >&2
}
# LABEL: messages a second in and out of the survivor's nats-server between each mark and the
# next, and its slowest connections' pending bytes at each mark (nats_pending NAME)
nats_watch_report() {
  kill "$nats_watch" 2>/dev/null
  wait "$nats_watch" 2>/dev/null
  mark end
  echo "  $1: the survivor's nats-server, messages a second in / out (MB/s in / out):" >&2
  awk 'NR == FNR { name[++m] = $1; at[m] = $2; next }
    { t[++n] = $1; im[n] = $2; om[n] = $3; ib[n] = $4; ob[n] = $5 }
    END {
      for (k = 1; k < m; k++) {
        a = 0; b = 0
        for (i = 1; i <= n; i++) { if (!a && t[i] >= at[k]) a = i; if (t[i] <= at[k + 1]) b = i }
        if (!a || b <= a) continue
        d = t[b] - t[a]
        printf "  %s:   %s to %s (%.0f s): %.0f / %.0f (%.1f / %.1f)\n", label, name[k], name[k + 1],
          d, (im[b] - im[a]) / d, (om[b] - om[a]) / d, (ib[b] - ib[a]) / d / 1e6, (ob[b] - ob[a]) / d / 1e6
      }
    }' label="$1" "$work/marks" "$work/natsvarz" >&2
  cat "$work"/pending-* 2>/dev/null | sed "s/^/  $1:   /" >&2
}
nats_pending() { # NAME: the 3 connections with the most bytes pending to them, now
  curl -s "http://127.0.0.1:$m2/connz?sort=pending&limit=3" | awk -v n="$1" -F'[:,]' '
    /"pending_bytes"/ { p = p (p ? ", " : "") ($2 + 0) " B" }
    END { print "at " n ": most bytes pending to a connection: " p }' >"$work/pending-$1"
}
tcp_watch_report() { # LABEL
  kill "$tcp_watch" 2>/dev/null
  wait "$tcp_watch" 2>/dev/null
  read -r _ pressure hard </proc/sys/net/ipv4/tcp_mem
  echo "  $1: kernel TCP memory (pages): most $(sort -n "$work/tcpmem" | tail -1), seconds at or \
over tcp_mem's pressure line $pressure: $(awk -v p="$pressure" '$1 >= p' "$work/tcpmem" | wc -l), \
at or over its limit $hard: $(awk -v h="$hard" '$1 >= h' "$work/tcpmem" | wc -l)" >&2
  # shellcheck disable=SC2086 # the counters' names, one word each
  echo "  $1: kernel TCP counters over the phase: $(NSTAT_HISTORY=$work/nstat.hist nstat -z \
    $TCP_COUNTERS | awk 'NR > 1 {printf "%s %s, ", $1, $2}' | sed 's/, $//')" >&2
}

# Failover: two nodes of FAILOVER_WORKERS workers on a two-server NATS cluster hold FAILOVER_N
# sessions, a pair per room with one member on each node (FAILOVER_SAME=1: both on node A);
# once they are all held, node A's supervisor and workers are killed (kill -9), and its clients
# resume on node B (sigload failover: the web client's schedule, FAILOVER_JITTER s of spread);
# B's workers and its nats-server are measured. The survivor's log says what it went through.
if has anteroom "$SERVERS" && has failover "$PHASES"; then
  for fw in $FAILOVER_WORKERS; do
    cluster
    sa=$(signode "fa-$fw" "$p1" "$c1" "$fw")
    mb=$((p1 + 3000)) # B's operator listeners: what moved between its workers
    sb=$(signode "fb-$fw" $((p1 + 1)) "$c2" "$fw" "$mb")
    pids+=("$sa" "$sb")
    wait_port "$p1" && wait_port $((p1 + 1))
    wa=$(workers_of "$sa" "$fw")
    wb=$(workers_of "$sb" "$fw")
    sleep 2 # each node hears the other's heartbeats before its sessions need a backup
    nextsrc
    same=()
    [ "$FAILOVER_SAME" = 1 ] && same=(-m)
    label=failover-w$fw
    out=$work/$label.out
    tcp_watch_start
    nats_watch_start
    timeout 900 "$load" failover "${same[@]}" -d anteroom -p "$p1,$((p1 + 1))" -s "$wb" -B "$n2" \
      -K "$work/sec" -l "$label" -b "$srcbase" -n "$FAILOVER_N" -P "$FAILOVER_PROCS" \
      -J "$FAILOVER_JITTER" -f "$FAILOVER_INFLIGHT" -W "$FAILOVER_BOUND" \
      >"$out" 2>>"$work/errors" &
    lp=$!
    for _ in $(seq 6000); do
      grep -q '^READY' "$out" 2>/dev/null && break
      kill -0 "$lp" 2>/dev/null || break
      sleep 0.1
    done
    if grep -q '^READY' "$out"; then
      sed 's/^/  /' "$out" >&2
      # the supervisor first, so that it starts no worker again
      IFS=, read -ra wal <<<"$wa"
      bus_counts death
      mark death
      kill -9 "$sa" "${wal[@]}" 2>/dev/null
      # FAILOVER_PERF=S: where B's workers spend the storm's first S seconds (perf, flat)
      if [ "$FAILOVER_PERF" -gt 0 ]; then
        perf record -q -F 499 ${FAILOVER_PERF_GRAPH:+-g} -o "$work/failover.perf" -p "$wb" -- sleep "$FAILOVER_PERF" 2>/dev/null &&
          perf report -i "$work/failover.perf" --no-children --sort sym 2>/dev/null |
          grep -v '^#' | grep -v '^$' | head -40 | sed 's/^/  perf /' >&2 &
      fi
    fi
    # each relay check's start marked; FAILOVER_PERF_CHECK=S: the whole machine over the
    # first S seconds of each
    for k in 1 2; do
      until grep -q "^CHECK $k" "$out" 2>/dev/null; do
        kill -0 "$lp" 2>/dev/null || break 2
        sleep 0.1
      done
      mark "check$k"
      bus_counts "check$k"
      nats_pending "check$k"
      [ "$FAILOVER_PERF_CHECK" -gt 0 ] || continue
      perf record -q -a -F 149 -o "$work/check$k.perf" -- sleep "$FAILOVER_PERF_CHECK" 2>/dev/null
      echo "  $label: the machine over check $k's first $FAILOVER_PERF_CHECK s, by command:" >&2
      perf report -i "$work/check$k.perf" --sort comm 2>/dev/null | grep -v '^#' | grep -v '^$' |
        head -8 | sed 's/^/  perf /' >&2
    done
    wait "$lp"
    rc=$?
    grep '^RESULT' "$out" | tee -a "$results" | sed 's/^RESULT /  /' >&2
    [ "$rc" = 0 ] || failed+=("$label")
    # what the survivor logged meanwhile (warn, or info with SIGNAL_ARGS="--log-level info")
    echo "  $label: resumes moved between the survivor's workers: $(metric_sum "$mb" "$fw" \
      'anteroom_signal_moved_total{dir="in"}'), not sent (no link, or its buffer full: over the bus): $(
      metric_sum "$mb" "$fw" 'anteroom_signal_moved_total{dir="unsent"}')" >&2
    echo "  $label: frames off the bus the survivor did not deliver: $(for w in no_record \
      elsewhere not_ours ours_no_copy bad; do printf '%s %s, ' "$w" "$(metric_sum "$mb" "$fw" \
        "anteroom_signal_frames_unheld_total{why=\"$w\"}")"; done | sed 's/, $//')" >&2
    echo "  $label: once the clients left, the survivor's sessions (owned, in grace) $(metric_sum "$mb" "$fw" \
      'anteroom_signal_sessions ') and connections $(metric_sum "$mb" "$fw" \
      'anteroom_signal_connections ')" >&2
    tcp_watch_report "$label"
    nats_watch_report "$label"
    bus_counts end
    echo "  $label: bus messages the survivor's workers published and received, by kind:" >&2
    bus_between "$label" death check1
    bus_between "$label" check1 check2
    bus_between "$label" check2 end
    echo "  $label: nats-servers' slow consumers: $(cat "$work"/nats[12]-*.log | grep -c 'Slow Consumer')" >&2
    echo "  $label: survivor's log events: $(grep -o '"event":"[a-z_]*"' "$work/node-fb-$fw.log" |
      sort | uniq -c | awk '{printf "%s %s, ", $2, $1}' | sed 's/"event"://g; s/"//g; s/, $//')" >&2
    # before its NATS servers, which it would miss while it stops; its workers too: one that
    # outlives a supervisor killed after 5 s would spend CPU in the next run
    IFS=, read -ra wbl <<<"$wb"
    stop "$sb" "${wbl[@]}"
    stop "$n1" "$n2"
  done
fi

# The scale run: SCALE connections (SCALE/2 calls, each pair joined to its room) held on one
# node of SCALE_WORKERS workers, from SCALE_PROCS client processes with a source address each.
if [ "$SCALE_PROCS" -gt 0 ] && has anteroom "$SERVERS" && has scale "$PHASES"; then
  # held SCALE_HOLD s after measuring (past the 25 s ping and 60 s idle timeout), then counted
  meter scale anteroom - idle -n "$SCALE" -P "$SCALE_PROCS" -H "$SCALE_HOLD" -f "$SCALE_INFLIGHT"
fi

if [ -s "$work/errors" ]; then
  echo "-- client errors (first lines):" >&2
  head -5 "$work/errors" >&2
fi
bash bench/signal/report.sh "$results" "$SCALE_WORKERS"
if [ ${#failed[@]} -gt 0 ]; then
  echo "full.sh: measurements that failed: ${failed[*]}" >&2
  exit 1
fi
