#!/usr/bin/env bash
# HTTP/2 rapid reset (CVE-2023-44487) against the anteroom-app daemon. Debian's libh2o 2.2.5
# predates the CVE and has no reset budget (docs/api.md, "HTTP/2 rapid reset"), so the app
# bounds what a connection can make it do: a public route that runs a store job is flooded with
# HEADERS + RST_STREAM pairs from our own client (rapid_reset.c), and the test wants
#   - the server to close that connection long before the flood ends (and to log why);
#   - requests from another client during the flood to be answered 200, not 503 (the store
#     queue is not filled by abandoned requests);
#   - an ordinary HTTP/2 client sending many requests at once on one connection (h2load, when
#     installed) to get every answer (no false positive).
#   rapid_reset.sh <anteroom-app> <ar_h2_rapid_reset> [sqlite|pg] [pairs]
# (pg: under scripts/pg-test-server, which exports AR_PG_CONNINFO.)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/daemon_lib.sh"
bin=${1:?anteroom-app}
rr=${2:?ar_h2_rapid_reset}
store=${3:-sqlite}
# About 57 MB of frames: more than loopback socket buffers hold, so a server that shuts the
# connection down is seen doing so before the flood ends.
pairs=${4:-1000000}

dir=$(mktemp -d /tmp/ar-app-rr.XXXXXX)
pid=""
rrpid=""
cleanup() {
  for p in $rrpid $pid; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo "rapid_reset.sh: command failed at line $LINENO (status $?)" >&2' ERR

port=$(free_port)
hport=$(free_port "$port")
ar_test_cert "$dir"
ar_test_servers "$dir/servers.json"
store_args=(--store-target "$dir/app.db")
[ "$store" = pg ] && store_args=(--store postgresql --store-target "${AR_PG_CONNINFO:?}")
seal=$(openssl rand -hex 32)
# Free ports are picked by probing; another suite may take one first: try again on new ones.
for attempt in 1 2 3; do
  ANTEROOM_APP_SEAL_KEY=$seal "$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" \
    --origin "https://127.0.0.1:$port" --listen-port "$port" --health-port "$hport" \
    "${store_args[@]}" --servers "$dir/servers.json" --store-threads 1 \
    >"$dir/log" 2>&1 &
  pid=$!
  ar_wait_health "$pid" "$hport" && break
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
  grep -q EADDRINUSE "$dir/log" && [ "$attempt" -lt 3 ] || { cat "$dir/log"; echo "daemon exited early"; exit 1; }
  port=$(free_port)
  hport=$(free_port "$port")
done
url="https://127.0.0.1:$port/api/v1/keys"
[ "$(curl -sk --http2 -o /dev/null -w '%{http_code}' "$url")" = 200 ] || { echo "no 200 before"; exit 1; }

# The flood, and meanwhile another client's requests.
"$rr" 127.0.0.1 "$port" /api/v1/keys "$pairs" >"$dir/rr.out" 2>&1 &
rrpid=$!
: >"$dir/codes"
while kill -0 "$rrpid" 2>/dev/null; do
  curl -sk --http2 -o /dev/null -w '%{http_code}\n' --max-time 20 "$url" >>"$dir/codes" || echo 000 >>"$dir/codes"
done
wait "$rrpid" || { echo "the flooding client failed (status $?):"; cat "$dir/rr.out"; exit 1; }
rrpid=""
cat "$dir/rr.out"
echo "other client during the flood: $(sort "$dir/codes" | uniq -c | tr '\n' ' ')"
read -r _ sent _ closed _ after _ _ _ _ _ _ <"$dir/rr.out"
[ "$closed" = yes ] || { echo "FAIL: the server kept the flooding connection open"; exit 1; }
[ "$after" -lt "$pairs" ] || { echo "FAIL: closed only after the whole flood ($after pairs)"; exit 1; }
grep -q h2_reset_flood "$dir/log" || { cat "$dir/log"; echo "FAIL: not logged"; exit 1; }
if grep -qv '^200$' "$dir/codes"; then echo "FAIL: another client was refused"; exit 1; fi
echo "ok flooding connection closed after $after of $pairs pairs; other client served"

# No false positive: many requests at once on one connection, all answered.
if command -v h2load >/dev/null; then
  h2load -t 1 -c 1 -m 100 -n 2000 "$url" >"$dir/h2load.out" 2>&1 || true
  ok=$(awk '/^status codes:/ {print $3}' "$dir/h2load.out")
  [ "$ok" = 2000 ] || { cat "$dir/h2load.out"; echo "FAIL: h2load got $ok of 2000"; exit 1; }
  echo "ok h2load: 2000 of 2000 answered 2xx on one connection with 100 streams"
fi
kill -TERM "$pid"
wait "$pid" || { echo "FAIL: daemon exit status $?"; exit 1; }
pid=""
echo "ok daemon stopped"
