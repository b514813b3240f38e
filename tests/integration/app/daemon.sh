#!/usr/bin/env bash
# The anteroom-app daemon as operators run it: configuration by flags, SQLite store, the
# operator listener (/healthz), HTTPS on HTTP/2 (curl, and nghttp when installed), SIGHUP keeps
# serving, SIGTERM stops cleanly with status 0.
#   daemon.sh <anteroom-app binary> <built web dir>
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/daemon_lib.sh"
bin=${1:?binary}
web=${2:?web dir}

dir=$(mktemp -d /tmp/ar-app-daemon.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

port=$(free_port)
hport=$(free_port "$port")

ar_test_cert "$dir"

ar_test_servers "$dir/servers.json" ', "empty": {}'

# A malformed TOTP sealing key stops the daemon before it serves anything.
if ANTEROOM_APP_SEAL_KEY=not-hex "$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" \
  --origin "https://127.0.0.1:$port" --listen-port "$port" --health-port "$hport" \
  --store-target "$dir/app.db" --web-dir "$web" \
  --servers "$dir/servers.json" >"$dir/badkey" 2>&1; then
  echo "a malformed seal key was accepted"; exit 1
fi
grep -q app_seal_key_invalid "$dir/badkey" || { cat "$dir/badkey"; exit 1; }
echo "ok malformed seal key refused"

seal_key=$(openssl rand -hex 32)
start() {
  ANTEROOM_APP_SEAL_KEY=$seal_key "$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" \
    --origin "https://127.0.0.1:$port" \
    --listen-port "$port" --health-port "$hport" --store-target "$dir/app.db" --web-dir "$web" \
    --servers "$dir/servers.json" >"$dir/log" 2>&1 &
  pid=$!
}
wait_health() {
  ar_wait_health "$pid" "$hport" || { cat "$dir/log"; echo "daemon exited early"; exit 1; }
}

# No seal key at all on a new database: secrets are sealed under the all-zero "unkeyed" key
# (keys.h), and the daemon serves (it once crashed here on a NULL key).
"$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" --origin "https://127.0.0.1:$port" \
  --listen-port "$port" --health-port "$hport" --store-target "$dir/unkeyed.db" --web-dir "$web" \
  --servers "$dir/servers.json" >"$dir/unkeyed.log" 2>&1 &
pid=$!
wait_health
kill -TERM "$pid"
wait "$pid" || { cat "$dir/unkeyed.log"; echo "the unkeyed daemon did not stop cleanly"; exit 1; }
echo "ok a new database without a seal key"

# Jurisdictions (S10): a clinic whose jurisdiction has no servers of its own stops the start
# before anything is served; so does a servers file naming one relay under two jurisdictions.
start
wait_health
kill -TERM "$pid"
wait "$pid" || true
pid=""
sqlite3 "$dir/app.db" "INSERT INTO clinics (name, jurisdiction, created_at) VALUES ('x', 'empty', 0)"
rc=0
"$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" --origin "https://127.0.0.1:$port" \
  --listen-port "$port" --health-port "$hport" --store-target "$dir/app.db" --web-dir "$web" \
  --servers "$dir/servers.json" >"$dir/log" 2>&1 || rc=$?
{ [ "$rc" -ne 0 ] && grep -q "refusing to start: clinics of jurisdiction 'empty'" "$dir/log"; } ||
  { cat "$dir/log"; echo "a clinic without servers in its jurisdiction did not stop the start"; exit 1; }
sqlite3 "$dir/app.db" "DELETE FROM clinics WHERE jurisdiction = 'empty'"
echo "ok refuses to start with a clinic whose jurisdiction has no servers"
cp "$dir/servers.json" "$dir/good.json"
cat >"$dir/servers.json" <<EOF
{"jurisdiction": "a",
 "jurisdictions": {"a": {"signal": ["wss://s.a/ws"], "turn": [{"node": "r1", "host": "t.example"}]},
                   "b": {"signal": ["wss://s.b/ws"], "turn": [{"node": "r2", "host": "t.example"}]}}}
EOF
rc=0
"$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" --origin "https://127.0.0.1:$port" \
  --store-target "$dir/app.db" --servers "$dir/servers.json" >"$dir/log" 2>&1 || rc=$?
{ [ "$rc" -eq 2 ] && grep -q "named under both a and b" "$dir/log"; } ||
  { cat "$dir/log"; echo "one relay in two jurisdictions was accepted"; exit 1; }
echo "ok refuses a relay named under two jurisdictions"
cp "$dir/good.json" "$dir/servers.json"

start
wait_health
[ "$(curl -sf "http://127.0.0.1:$hport/healthz")" = "ok" ] || { echo "no /healthz"; exit 1; }
echo "ok /healthz on the operator listener"

out=$(curl -sk --http2 -o /dev/null -w '%{http_code} %{http_version}' "https://127.0.0.1:$port/")
[ "$out" = "200 2" ] || { echo "curl --http2: $out"; exit 1; }
echo "ok HTTP/2 (curl)"
if command -v nghttp >/dev/null; then
  nghttp -v "https://127.0.0.1:$port/" >"$dir/nghttp" 2>&1 || { cat "$dir/nghttp"; exit 1; }
  grep -q ':status: 200' "$dir/nghttp" || { echo "nghttp: no 200"; exit 1; }
  grep -q 'content-security-policy: default-src' "$dir/nghttp" || { echo "nghttp: no CSP"; exit 1; }
  echo "ok HTTP/2 (nghttp)"
fi
# TLS below 1.2 is refused.
if curl -sk --tlsv1.1 --tls-max 1.1 -o /dev/null "https://127.0.0.1:$port/" 2>/dev/null; then
  echo "TLS 1.1 was accepted"; exit 1
fi
echo "ok TLS 1.1 refused"

kill -HUP "$pid"
# The reload runs when the daemon's loop takes the signal: wait for its log line (up to 10 s)
# rather than a fixed 0.3 s, which a loaded machine can outlast.
for _ in $(seq 1 100); do grep -q '"tls_reloaded"' "$dir/log" && break; sleep 0.1; done
grep -q '"tls_reloaded"' "$dir/log" || { cat "$dir/log"; echo "no reload logged"; exit 1; }
out=$(curl -sk --http1.1 -o /dev/null -w '%{http_code} %{http_version}' "https://127.0.0.1:$port/")
[ "$out" = "200 1.1" ] || { echo "after SIGHUP: $out"; exit 1; }
echo "ok SIGHUP reloads and keeps serving"

rc=0
ar_term "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || { cat "$dir/log"; echo "exit status $rc after SIGTERM"; exit 1; }
echo "ok SIGTERM stops with status 0"
