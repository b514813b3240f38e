#!/usr/bin/env bash
# The anteroom-monitor daemon as operators run it: flags, a keys file, SQLite, the operator
# listener (/healthz, /metrics), a report over HTTP/2 answered 204 with nothing in it, reads
# refused, SIGHUP (certificate and keys) keeps serving, SIGTERM writes the last aggregates and
# stops with status 0. Kills only the PID it started.
#   daemon.sh <anteroom-monitor> <monitor_mint>
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../app/daemon_lib.sh"
bin=${1:?binary}
mint=${2:?monitor_mint}

dir=$(mktemp -d /tmp/ar-monitor-daemon.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$dir/log" 2>/dev/null | tail -20; exit 1; }

port=$(free_port)
hport=$(free_port "$port")

ar_test_cert "$dir"
"$mint" keys "$dir"

"$bin" --help >/dev/null
if "$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" --origin https://app.test \
  --store-target "$dir/m.db" --keys "$dir/none" >/dev/null 2>&1; then
  fail "started without a keys file"
fi
echo "ok refuses to start without its keys"

"$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" --origin https://app.test \
  --keys "$dir/token-keys.pub" --listen-port "$port" --health-port "$hport" \
  --store-target "$dir/m.db" >"$dir/log" 2>&1 &
pid=$!
ar_wait_health "$pid" "$hport" || fail "daemon exited early"
[ "$(curl -sf "http://127.0.0.1:$hport/healthz")" = "ok" ] || fail "no /healthz"
echo "ok /healthz on the operator listener"

tok=$("$mint" token "$dir" clinic-1 area-1 1)
body="{\"v\":1,\"token\":\"$tok\",\"interval_s\":10,\"call_s\":30,\"browser\":\"safari\",\"profile\":\"low\",\"candidate\":\"relay\",\"rtt_ms\":80,\"final\":true}"
out=$(curl -sk --http2 -o "$dir/body" -w '%{http_code} %{http_version}' -H 'Content-Type: text/plain' \
  --data-binary "$body" "https://127.0.0.1:$port/v1/stats")
[ "$out" = "204 2" ] || fail "POST: $out"
[ ! -s "$dir/body" ] || fail "POST answered a body"
out=$(curl -sk -o "$dir/body" -w '%{http_code}' "https://127.0.0.1:$port/v1/stats")
[ "$out" = 405 ] && [ ! -s "$dir/body" ] || fail "GET: $out"
echo "ok POST 204 over HTTP/2 without a body; GET 405 without a body"

kill -HUP "$pid"
sleep 0.3
out=$(curl -sk --http1.1 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "${body/safari/chrome}" "https://127.0.0.1:$port/v1/stats")
[ "$out" = 204 ] || fail "after SIGHUP: $out"
echo "ok SIGHUP keeps serving"

curl -sf "http://127.0.0.1:$hport/metrics" | grep -q '^anteroom_monitor_reports_accepted_total 2$' ||
  fail "metrics: $(curl -sf "http://127.0.0.1:$hport/metrics" | grep accepted)"
echo "ok metrics on the operator listener"

rc=0
ar_term "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
row=$(sqlite3 "$dir/m.db" "SELECT clinic, area, reports, calls, relayed_calls, ended_calls FROM monitor_hourly")
[ "$row" = "clinic-1|area-1|2|1|1|1" ] || fail "stored row: $row"
echo "ok SIGTERM wrote the last aggregates ($row) and stopped with status 0"
