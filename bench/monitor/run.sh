#!/usr/bin/env bash
# The monitor's benchmark (docs/performance.md, "Monitor"):
#   1. ingest: h2load POSTs one valid report (a verified Ed25519 token each time) N times,
#      over HTTP/2 and HTTP/1.1, to anteroom-monitor and to nginx answering a static 204 on the
#      same certificate (the limit: TLS and HTTP with no work). Prints requests/s and the
#      server's CPU per request from /proc/<pid>/stat (utime + stime; nginx: master + worker).
#   2. memory per clinic-hour of aggregates (ar_bench_monitor_mem).
# Both servers run one process with one event loop (nginx: worker_processes 1).
#   bash bench/monitor/run.sh [requests] [connections] [streams]
# (h2load's timed mode, -D, counts nothing against nginx 1.22, so runs are by count.)
# Needs the default preset built, nginx-light and nghttp2-client (h2load): scripts/deps.
# Kills only the PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/app/daemon_lib.sh
nreq=${1:-50000}
conns=${2:-8}
streams=${3:-16}
b=build/default
mon=$b/cmd/anteroom-monitor/anteroom-monitor
mint=$b/tests/integration/monitor/monitor_mint
mem=$b/bench/monitor/ar_bench_monitor_mem
for f in "$mon" "$mint" "$mem"; do [ -x "$f" ] || { echo "build first: $f missing" >&2; exit 1; }; done
command -v h2load >/dev/null || { echo "h2load missing (nghttp2-client)" >&2; exit 1; }

dir=$(mktemp -d /tmp/ar-bench-monitor.XXXXXX)
chmod 755 "$dir" # nginx workers run as nobody and keep request bodies under the prefix
pids=()
cleanup() {
  ar_kill_all "${pids[@]}"
  rm -rf "$dir"
}
trap cleanup EXIT

ar_test_cert "$dir"
"$mint" keys "$dir"
tok=$("$mint" token "$dir" clinic-1 area-1 1)
printf '{"v":1,"token":"%s","interval_s":10,"call_s":300,"browser":"firefox","profile":"standard","candidate":"srflx","remote_candidate":"host","bitrate_in_kbps":1450,"bitrate_out_kbps":1380,"loss_permille":4,"jitter_ms":9,"rtt_ms":38,"fps":30,"width":1280,"height":720}' \
  "$tok" >"$dir/body.json"
echo "report body: $(wc -c <"$dir/body.json") bytes"

mport=$(free_port)
hport=$(free_port)
"$mon" --cert "$dir/cert.pem" --key "$dir/key.pem" --origin https://app.test \
  --keys "$dir/token-keys.pub" --listen-port "$mport" --health-port "$hport" \
  --store-target "$dir/m.db" --rate-burst 1000000 --rate-per-minute 100000000 \
  --log-level warn >"$dir/monitor.log" 2>&1 &
mpid=$!
pids+=("$mpid")

nport=$(free_port)
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$nport ssl http2;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /v1/stats { return 204; }
  }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir" &
npid=$!
pids+=("$npid")
sleep 1
kill -0 "$mpid" || { cat "$dir/monitor.log"; exit 1; }
kill -0 "$npid" || { cat "$dir/nginx-error.log"; exit 1; }

ticks() { # summed utime + stime of the given pids, in clock ticks
  local t=0 p
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

run() { # run <label> <port> <h1|h2> <pids...>
  local label=$1 port=$2 proto=$3
  shift 3
  local args=(-t 1 -c "$conns" -n "$nreq" -d "$dir/body.json"
    -H 'content-type: application/json')
  if [ "$proto" = h1 ]; then args+=(--h1); else args+=(-m "$streams"); fi
  local t0 t1
  t0=$(ticks "$@")
  h2load "${args[@]}" "https://127.0.0.1:$port/v1/stats" >"$dir/h2load.out" 2>&1
  t1=$(ticks "$@")
  local rps ok total
  rps=$(awk '/^finished in/ {print $4}' "$dir/h2load.out")
  ok=$(awk '/^status codes:/ {print $3}' "$dir/h2load.out")
  total=$(awk '/^requests:/ {print $8}' "$dir/h2load.out")
  [ -n "$ok" ] && [ "$ok" -gt 0 ] || { cat "$dir/h2load.out"; exit 1; }
  awk -v l="$label" -v r="$rps" -v ok="$ok" -v t="$total" -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN {
    printf "%-34s %9s req/s  2xx %d of %d  server CPU %.1f us/request\n", l, r, ok, t, d * 1e6 / hz / ok }'
}

nworker=$(pgrep -P "$npid" | head -n 1)
echo "h2load: $nreq requests, $conns connections, ${streams} streams each on HTTP/2"
run "anteroom-monitor HTTP/2" "$mport" h2 "$mpid"
run "nginx static 204 HTTP/2" "$nport" h2 "$npid" "$nworker"
run "anteroom-monitor HTTP/1.1" "$mport" h1 "$mpid"
run "nginx static 204 HTTP/1.1" "$nport" h1 "$npid" "$nworker"
accepted=$(curl -sf "http://127.0.0.1:$hport/metrics" | awk '/^anteroom_monitor_reports_accepted_total/ {print $2}')
echo "monitor accepted $accepted reports into the aggregates"
"$mem" 10000 360
