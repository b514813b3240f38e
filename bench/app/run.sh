#!/usr/bin/env bash
# anteroom-app's benchmark (docs/performance.md, "App"): requests/s and the server's CPU per
# request, measured from outside by h2load (Debian's nghttp2-client) over TLS and HTTP/2, for
#   - token minting: GET /api/v1/signal-token (session read, roles, newest key and TURN secret
#     from the store, one Ed25519 signature and one TURN REST credential);
#   - a session-authenticated read: GET /api/v1/clinics/{clinic} (session read and refresh,
#     roles, the clinic row);
#   - patient entry: POST /api/v1/entry/{clinic}/{area} (area row, opening hours, the hourly
#     counter upsert, a patient token and a TURN credential);
# each beside nginx (Debian's nginx-light, one worker) serving a static file of exactly the
# same size as the app's answer on the same certificate: the limit for TLS and HTTP/2 with no
# work behind them. Then the cost of one sign-in (POST /api/v1/session: Argon2id verification
# with the app's parameters, opslimit 3 and 64 MiB, plus the session and audit rows).
#   bash bench/app/run.sh [requests] [connections] [streams] [sign-ins]
# CPU is utime + stime of every thread of the server from /proc/<pid>/stat (nginx: master +
# worker), read before and after each h2load run. The app runs on SQLite (WAL) in a temporary
# directory with 4 store threads, as `anteroom up` runs it.
# Needs the default preset built, nginx-light, nghttp2-client and sqlite3 (scripts/deps).
# Kills only the PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/app/daemon_lib.sh
nreq=${1:-20000}
conns=${2:-8}
streams=${3:-16}
nsign=${4:-60}
b=build/default
app=$b/cmd/anteroom-app/anteroom-app
adm=$b/cmd/anteroom/anteroom
for f in "$app" "$adm"; do [ -x "$f" ] || { echo "build first: $f missing" >&2; exit 1; }; done
for c in h2load nginx sqlite3 curl; do
  command -v "$c" >/dev/null || { echo "$c missing (scripts/deps)" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/ar-bench-app.XXXXXX)
chmod 755 "$dir" # nginx workers run as nobody and read the static files under the prefix
pids=()
cleanup() {
  ar_kill_all "${pids[@]}"
  rm -rf "$dir"
}
trap cleanup EXIT

ar_test_cert "$dir"

# The store: a clinic in jurisdiction "local", an always-open waiting area, and a provider
# whose password has the app's real Argon2id cost (no --fast-hash). The second factor is not
# required of this account, so its session reaches clinic routes without a TOTP step.
seal=$(openssl rand -hex 32)
export ANTEROOM_APP_SEAL_KEY=$seal
clinic=$("$adm" admin --state-dir "$dir" create-clinic --name Bench --jurisdiction local 2>/dev/null |
  awk '{print $2}')
"$adm" admin --state-dir "$dir" create-area --clinic "$clinic" --slug bench --name Bench >/dev/null 2>&1
pw=$("$adm" admin --state-dir "$dir" create-account --email bench@example.org --name Bench \
  --clinic "$clinic" --role provider 2>/dev/null | awk '{print $NF}')
sqlite3 "$dir/app.db" "UPDATE accounts SET mfa_required = 0"
cat >"$dir/servers.json" <<JSON
{"jurisdiction": "local",
 "jurisdictions": {"local": {"signal": ["wss://127.0.0.1:8444/ws"],
   "turn": [{"node": "relay-1", "host": "127.0.0.1", "port": 3478, "tls_port": 5349}]}}}
JSON

aport=$(free_port)
hport=$(free_port)
origin="https://127.0.0.1:$aport"
"$app" --cert "$dir/cert.pem" --key "$dir/key.pem" --origin "$origin" --listen-port "$aport" \
  --health-port "$hport" --store-target "$dir/app.db" --servers "$dir/servers.json" \
  --entry-per-minute 100000 --max-conns 10000 --log-level warn >"$dir/app.log" 2>&1 &
apid=$!
pids+=("$apid")
ar_wait_health "$apid" "$hport" || { cat "$dir/app.log"; exit 1; }

# One session for the reads; curl's cookie jar line 7 holds the value.
curl -sk --http2 -c "$dir/jar" -H 'content-type: application/json' \
  -d "{\"email\":\"bench@example.org\",\"password\":\"$pw\"}" "$origin/api/v1/session" >/dev/null
sid=$(awk '$6 == "__Host-ar_session" {print $7}' "$dir/jar")
[ -n "$sid" ] || { echo "sign-in failed" >&2; cat "$dir/app.log"; exit 1; }
cookie="cookie: __Host-ar_session=$sid"

# The answers, whose sizes the static files copy.
mint_path=/api/v1/signal-token
read_path=/api/v1/clinics/$clinic
entry_path=/api/v1/entry/$clinic/bench
echo '{}' | tr -d '\n' >"$dir/entry.json"
curl -sk --http2 -H "$cookie" "$origin$mint_path" >"$dir/mint.body"
curl -sk --http2 -H "$cookie" "$origin$read_path" >"$dir/read.body"
curl -sk --http2 -H 'content-type: application/json' --data-binary @"$dir/entry.json" \
  "$origin$entry_path" >"$dir/entry.body"
grep -q '"token"' "$dir/mint.body" || { echo "no token minted:" >&2; cat "$dir/mint.body"; exit 1; }
grep -q '"jurisdiction"' "$dir/read.body" || { cat "$dir/read.body"; exit 1; }
grep -q '"token"' "$dir/entry.body" || { cat "$dir/entry.body"; exit 1; }
mkdir -p "$dir/www"
for n in mint read entry; do head -c "$(wc -c <"$dir/$n.body")" /dev/zero | tr '\0' x >"$dir/www/$n"; done
chmod -R a+rX "$dir/www"

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
  default_type application/json;
  server {
    listen 127.0.0.1:$nport ssl http2;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $dir/www;
    location = /mint { }
    location = /read { }
    location = /entry { }
  }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir" &
npid=$!
pids+=("$npid")
sleep 1
kill -0 "$npid" || { cat "$dir/nginx-error.log"; exit 1; }
nworker=$(pgrep -P "$npid" | head -n 1)
[ "$(curl -sk --http2 "https://127.0.0.1:$nport/mint" | wc -c)" = "$(wc -c <"$dir/mint.body")" ] ||
  { echo "nginx does not serve the static answer" >&2; exit 1; }

ticks() { # summed utime + stime of the given pids (all their threads), in clock ticks
  local t=0 p
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

# run <label> <n> <url> <h2load args...> -- <pids...>: one line, and the CPU us per request in
# $dir/last (for the ratios).
run() {
  local label=$1 n=$2 url=$3
  shift 3
  local args=()
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  local t0 t1
  t0=$(ticks "$@")
  h2load -t 1 -n "$n" "${args[@]}" "$url" >"$dir/h2load.out" 2>&1
  t1=$(ticks "$@")
  local rps ok
  rps=$(awk '/^finished in/ {print $4}' "$dir/h2load.out")
  ok=$(awk '/^status codes:/ {print $3}' "$dir/h2load.out")
  [ -n "$ok" ] && [ "$ok" -gt 0 ] || { cat "$dir/h2load.out"; exit 1; }
  awk -v l="$label" -v r="$rps" -v ok="$ok" -v t="$n" -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN {
    printf "%-40s %9s req/s  2xx %d of %d  server CPU %.1f us/request\n", l, r, ok, t, d * 1e6 / hz / ok }'
  awk -v ok="$ok" -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.3f\n", d * 1e6 / hz / ok }' >"$dir/last"
}

h2=(-c "$conns" -m "$streams")
echo "anteroom-app benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "anteroom-app $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(h2load --version 2>&1 | head -n 1)"
printf 'answers: token mint %d B, clinic read %d B, patient entry %d B (nginx serves files of these sizes)\n' \
  "$(wc -c <"$dir/mint.body")" "$(wc -c <"$dir/read.body")" "$(wc -c <"$dir/entry.body")"
echo "h2load: $nreq requests per row, $conns connections, $streams streams each, HTTP/2 over TLS"
declare -A cpu
run "app token mint (signal-token)" "$nreq" "$origin$mint_path" "${h2[@]}" -H "$cookie" -- "$apid"
cpu[mint]=$(cat "$dir/last")
run "nginx static, same size" "$nreq" "https://127.0.0.1:$nport/mint" "${h2[@]}" -- "$npid" "$nworker"
cpu[nmint]=$(cat "$dir/last")
run "app session read (clinic)" "$nreq" "$origin$read_path" "${h2[@]}" -H "$cookie" -- "$apid"
cpu[read]=$(cat "$dir/last")
run "nginx static, same size" "$nreq" "https://127.0.0.1:$nport/read" "${h2[@]}" -- "$npid" "$nworker"
cpu[nread]=$(cat "$dir/last")
run "app patient entry (token + counter)" "$nreq" "$origin$entry_path" "${h2[@]}" \
  -d "$dir/entry.json" -H 'content-type: application/json' -- "$apid"
cpu[entry]=$(cat "$dir/last")
run "nginx static, same size" "$nreq" "https://127.0.0.1:$nport/entry" "${h2[@]}" -- "$npid" "$nworker"
cpu[nentry]=$(cat "$dir/last")

# Sign-in: the real Argon2id cost. 4 connections, one request each at a time (browsers sign in
# one by one); every success opens a session and appends an audit entry.
printf '{"email":"bench@example.org","password":"%s"}' "$pw" >"$dir/signin.json"
run "app sign-in (Argon2id, 64 MiB, ops 3)" "$nsign" "$origin/api/v1/session" -c 4 -m 1 \
  -d "$dir/signin.json" -H 'content-type: application/json' -- "$apid"
cpu[sign]=$(cat "$dir/last")
awk '/time for request:/ {print "sign-in latency (h2load, min/max/mean/sd): " $4 " " $5 " " $6 " " $7}' "$dir/h2load.out"

echo
echo "ratios (server CPU per request)"
awk -v a="${cpu[mint]}" -v n="${cpu[nmint]}" 'BEGIN { printf "token mint / nginx same-size static     %6.2f\n", a / n }'
awk -v a="${cpu[read]}" -v n="${cpu[nread]}" 'BEGIN { printf "session read / nginx same-size static   %6.2f\n", a / n }'
awk -v a="${cpu[entry]}" -v n="${cpu[nentry]}" 'BEGIN { printf "patient entry / nginx same-size static  %6.2f\n", a / n }'
awk -v a="${cpu[sign]}" -v n="${cpu[read]}" 'BEGIN { printf "sign-in / session read                  %6.0f\n", a / n }'
awk -v a="${cpu[sign]}" 'BEGIN { printf "sign-ins per core-second                %6.1f\n", 1e6 / a }'
kill -0 "$apid" || { echo "the app died" >&2; cat "$dir/app.log"; exit 1; }
