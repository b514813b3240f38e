#!/usr/bin/env bash
# Runs the signalling transport benchmark: the same meter (ar_bench_signal) against the bare
# relay, our WebSocket relay plain and with TLS on OpenSSL, wolfSSL and BoringSSL (each one that
# the build has), and the Node `ws` relay, one server at a time on loopback, and prints each
# server's figures.
# Usage: bench/signal/transport.sh [connections=10000] [relay pairs=50] [relay seconds=10]
# Needs: cmake --build --preset default; (cd bench/signal/node && npm install).
set -euo pipefail
cd "$(dirname "$0")/../.."

n=${1:-10000}
pairs=${2:-50}
secs=${3:-10}
bin=build/default/bench/signal
work=build/bench-signal
mkdir -p "$work"
if [ ! -f "$work/cert.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
fi
port=19101

# run LABEL METER-FLAGS -- SERVER COMMAND...: starts the server, waits for its "pid N" line,
# meters it, stops it by its pid.
run() {
  local label=$1 flags=$2
  shift 3
: >"$work/$label.out"
  "$@" >"$work/$label.out" 2>&1 &
  local spid=$!
  local pid=""
  for _ in $(seq 50); do
    pid=$(awk '/^pid /{print $2; exit}' "$work/$label.out" || true)
    [ -n "$pid" ] && break
    sleep 0.1
  done
  if [ -z "$pid" ]; then
    echo "$label: server did not start"; kill "$spid" 2>/dev/null || true; return 1
  fi
  # shellcheck disable=SC2086
  "$bin/ar_bench_signal" -p "$port" -s "$pid" -n "$n" -P 2 -k "$pairs" -T "$secs" \
    -l "$label" $flags || echo "$label: meter failed"
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  port=$((port + 1))
}

echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
run bare "-r" -- "$bin/ar_bench_bare_relay" "$port"
run anteroom-plain "" -- "$bin/ar_bench_ws_server" "$port"
run anteroom-openssl "-t" -- "$bin/ar_bench_ws_server" "$port" openssl "$work/cert.pem" \
  "$work/key.pem"
run anteroom-wolfssl "-t" -- "$bin/ar_bench_ws_server" "$port" wolfssl "$work/cert.pem" \
  "$work/key.pem"
run anteroom-boringssl "-t" -- "$bin/ar_bench_ws_server" "$port" boringssl "$work/cert.pem" \
  "$work/key.pem"
run node-ws "" -- node bench/signal/node/relay.js "$port"
