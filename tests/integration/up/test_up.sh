#!/usr/bin/env bash
# End-to-end test of `anteroom up` with the real relay:
#   1. start it on a fresh state dir and free ports; the relay answers a STUN binding request
#      and serves metrics at the URL printed;
#   2. the certificate, key and TURN secret exist with mode 0600 (dir 0700), the secret is not on
#      the relay's command line, and the relay allocates with credentials made from it (only);
#   3. a second `anteroom up` on the same state dir is refused;
#   4. kill -9 of the relay: a new pid is started and answers;
#   5. SIGTERM to anteroom: exit 0 and no child left.
# With anteroom-app built it also enters the --demo waiting area as a patient; with
# anteroom-signal built and nats-server installed, that patient's token opens a wss session on
# the signalling node (subprotocol anteroom.v1, hello answered by welcome).
# Every step is bounded; the trap kills only the PIDs this script started or saw printed.
# Exit 77 (CTest SKIP_RETURN_CODE) only when anteroom-turn is not built.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin=$1
if [ -n "${ANTEROOM_BIN_DIR:-}" ]; then
    relay=$ANTEROOM_BIN_DIR/anteroom-turn
else
    relay=$(dirname "$bin")/../anteroom-turn/anteroom-turn
fi
if [ ! -x "$relay" ]; then
    echo "SKIP: anteroom-turn is not built (looked for $relay); nothing for anteroom up to run"
    exit 77
fi

tmp=$(mktemp -d /tmp/anteroom-up-test.XXXXXX)
state=$tmp/state
up_pid=""
seen_pids=()

trap up_cleanup EXIT

fail() {
    echo "FAIL: $*"
    echo "--- anteroom stdout"
    cat "$tmp/out" 2>/dev/null
    echo "--- anteroom stderr"
    tail -n 30 "$tmp/err" 2>/dev/null
    echo "--- relay log"
    tail -n 30 "$state/logs/turn.log" 2>/dev/null
    exit 1
}

port_free() { # no socket of any type or state on the port (TIME_WAIT blocks a bind too)
    [ -z "$(ss -Han "( sport = :$1 )" 2>/dev/null)" ]
}
nports=11 # turn, turn TLS, metrics x5 (offsets 0-4), app, signal, monitor, nats
pick_ports() { # $nports consecutive free ports below the ephemeral range, so no outgoing
    # connection of another test can take one between our check and the bind
    local i j base low ok
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    for i in $(seq 1 50); do
        base=$((10000 + RANDOM % (low - 10020)))
        ok=1
        for j in $(seq 0 $((nports - 1))); do
            port_free $((base + j)) || { ok=0; break; }
        done
        if [ "$ok" = 1 ]; then
            echo "$base"
            return 0
        fi
    done
    return 1
}

stun_ok() { # stun_ok <port>: one binding request answered
    if command -v turnutils_stunclient >/dev/null; then
        timeout 3 turnutils_stunclient -p "$1" 127.0.0.1 2>&1 | grep -q 'reflexive addr'
    else
        timeout 3 stun "127.0.0.1:$1" 2>&1 | grep -q 'Primary: Open'
    fi
}

wait_poll=0.2

relay_pid() { # the pid of the last "turn: pid N" line
    grep -oE '^turn: pid [0-9]+' "$tmp/out" 2>/dev/null | tail -n 1 | grep -oE '[0-9]+$'
}
new_relay_pid() { # new_relay_pid <old>: true once a different pid is printed
    local p
    p=$(relay_pid)
    [ -n "$p" ] && [ "$p" != "$1" ]
}

base=$(pick_ports) || fail "no free ports"
turn_port=$base
metrics_port=$((base + 2))
app_port=$((base + 7)) # signal +1, monitor +2
nats_port=$((base + 10))
up_flags=(--state-dir "$state" --bind 127.0.0.1 --turn-port "$turn_port"
    --turn-tls-port $((base + 1)) --metrics-port "$metrics_port" --app-port "$app_port"
    --nats-port "$nats_port" --demo --fast-hash)
"$bin" up "${up_flags[@]}" >"$tmp/out" 2>"$tmp/err" &
up_pid=$!

# 1. The relay starts and answers.
wait_for 15 new_relay_pid none || fail "anteroom up printed no relay pid"
seen_pids+=("$(relay_pid)")
wait_for 15 stun_ok "$turn_port" || fail "relay did not answer a STUN binding on $turn_port"
pid1=$(relay_pid) # the one answering, should the first have died on a port race
seen_pids+=("$pid1")
[ "$(ps -o ppid= -p "$pid1" | tr -d ' ')" = "$up_pid" ] || fail "relay $pid1 is not our child"
echo "ok: relay pid $pid1 answers STUN on $turn_port"

# The metrics URL printed on the "what runs where" line serves the relay's metrics.
url=$(grep -oE 'metrics http://[^;]+' "$tmp/out" | head -n 1 | cut -d' ' -f2)
[ "$url" = "http://127.0.0.1:$metrics_port/metrics" ] || fail "printed metrics URL '$url'"
curl -sf --max-time 3 "$url" | grep -q '^anteroom_turn_' || fail "no relay metrics at $url"
echo "ok: metrics at $url"

# 2. State files and their modes.
for f in tls/cert.pem tls/key.pem secrets/turn-static-auth-secret; do
    [ -f "$state/$f" ] || fail "missing $state/$f"
    mode=$(stat -c %a "$state/$f")
    [ "$mode" = 600 ] || fail "$f has mode $mode, want 600"
done
for d in . tls secrets logs; do
    mode=$(stat -c %a "$state/$d")
    [ "$mode" = 700 ] || fail "$d has mode $mode, want 700"
done
[ -f "$state/logs/turn.log" ] || fail "no logs/turn.log"
openssl x509 -in "$state/tls/cert.pem" -noout -ext subjectAltName 2>/dev/null |
    grep -q 'IP Address:127.0.0.1' || fail "certificate lacks the 127.0.0.1 SAN"
secret=$(cat "$state/secrets/turn-static-auth-secret")
[ "${#secret}" -ge 32 ] || fail "secret too short"
tr '\0' ' ' <"/proc/$pid1/cmdline" | grep -qF -- "$secret" && fail "secret visible in argv"
echo "ok: state files 0600 in 0700 folders, secret not in argv"

# The relay got the secret: TURN REST credentials made from the file allocate, others do not.
# (The client's peers are on loopback, which the relay refuses by policy; allocating is enough.)
command -v turnutils_uclient >/dev/null || fail "turnutils_uclient missing (scripts/deps: coturn)"
allocations() {
    curl -sf --max-time 3 "$url" | awk '/^anteroom_turn_allocations_total/ {n += $2} END {print n + 0}'
}
before=$(allocations)
bad=$(timeout 20 turnutils_uclient -W not-the-secret -u up-test -y -n 1 -m 1 -l 100 \
    -p "$turn_port" 127.0.0.1 2>&1)
grep -q 'Cannot complete Allocation' <<<"$bad" || fail "a wrong secret was not refused: $bad"
sleep 1 # the relay publishes counters about once a second
[ "$(allocations)" = "$before" ] || fail "a wrong secret allocated"
timeout 20 turnutils_uclient -W "$secret" -u up-test -y -n 1 -m 1 -l 100 -p "$turn_port" \
    127.0.0.1 >"$tmp/uclient" 2>&1
grep -q 'Cannot complete Allocation' "$tmp/uclient" && fail "the state dir's secret was refused"
more_allocations() { [ "$(allocations)" -gt "$before" ]; }
wait_for 5 more_allocations || fail "no allocation with the secret: $(cat "$tmp/uclient")"
echo "ok: the relay allocates with the state dir's secret and refuses another"

# 2b. anteroom-app runs on SQLite in the state dir (when built): the first start printed the
# operator's one-time password, which signs in; the --demo waiting area lets a patient enter
# and hands out this machine's relay with credentials the relay accepts.
app_bin=$(dirname "$bin")/../anteroom-app/anteroom-app
[ -n "${ANTEROOM_BIN_DIR:-}" ] && app_bin=$ANTEROOM_BIN_DIR/anteroom-app
if [ -x "$app_bin" ]; then
    app_pid() { grep -oE '^app: pid [0-9]+' "$tmp/out" 2>/dev/null | tail -n 1 | grep -oE '[0-9]+$'; }
    app_up() { curl -sf --max-time 2 "http://127.0.0.1:$((metrics_port + 1))/healthz" >/dev/null; }
    wait_for 15 app_up || fail "anteroom-app did not come up"
    seen_pids+=("$(app_pid)")
    pw=$(grep -oE 'one-time password [A-Za-z0-9_-]+' "$tmp/out" | awk '{print $3}')
    [ "${#pw}" -ge 12 ] || fail "no one-time operator password printed"
    origin="https://127.0.0.1:$app_port"
    code=$(curl -sk --max-time 5 -o /dev/null -w '%{http_code}' -H "Origin: $origin" \
        -H 'Content-Type: application/json' \
        -d "{\"email\":\"operator@anteroom.localhost\",\"password\":\"$pw\"}" \
        "$origin/api/v1/session")
    [ "$code" = 201 ] || fail "the printed operator password does not sign in ($code)"
    grep -qF -- "$pw" "$state/logs/app.log" "$tmp/err" && fail "the password is in a log"
    entry=$(grep -oE '/api/v1/entry/[0-9]+/demo' "$tmp/out" | head -n 1)
    [ -n "$entry" ] || fail "no demo waiting area printed"
    curl -sk --max-time 5 "$origin$entry" | grep -q '"open_now":true' || fail "demo area not open"
    body=$(curl -sk --max-time 5 -H "Origin: $origin" -H 'Content-Type: application/json' \
        -d '{}' "$origin$entry")
    grep -q '"token":"AR1\.' <<<"$body" || fail "no patient token: $body"
    grep -qF "turn:127.0.0.1:$turn_port?transport=udp" <<<"$body" || fail "no relay URL: $body"
    user=$(sed -E 's/.*"username":"([^"]+)".*/\1/' <<<"$body")
    cred=$(sed -E 's/.*"credential":"([^"]+)".*/\1/' <<<"$body")
    timeout 20 turnutils_uclient -u "$user" -w "$cred" -y -n 1 -m 1 -l 100 -p "$turn_port" \
        127.0.0.1 >"$tmp/uclient-app" 2>&1
    grep -q 'Cannot complete Allocation' "$tmp/uclient-app" &&
        fail "the relay refused the app's credential: $(cat "$tmp/uclient-app")"
    echo "ok: anteroom-app up: operator password signs in, demo entry hands out the relay"

    # 2c. The signalling node, on the bus of the NATS server anteroom up runs, takes that patient.
    signal_bin=$(dirname "$bin")/../anteroom-signal/anteroom-signal
    [ -n "${ANTEROOM_BIN_DIR:-}" ] && signal_bin=$ANTEROOM_BIN_DIR/anteroom-signal
    nats_bin=$(PATH=$PATH:/usr/sbin:/usr/local/sbin command -v nats-server)
    [ -n "${ANTEROOM_BIN_DIR:-}" ] && nats_bin=$ANTEROOM_BIN_DIR/nats-server
    if [ -x "$signal_bin" ] && [ -x "$nats_bin" ]; then
        pid_of() { grep -oE "^$1: pid [0-9]+" "$tmp/out" 2>/dev/null | tail -n 1 | grep -oE '[0-9]+$'; }
        signal_url="wss://127.0.0.1:$((app_port + 1))/ws"
        grep -qF "\"signal\":[\"$signal_url\"]" <<<"$body" || fail "entry names no $signal_url: $body"
        grep -qE "^nats: pid [0-9]+, listening nats 127.0.0.1:$nats_port;" "$tmp/out" ||
            fail "no nats line"
        grep -qE "^signal: pid [0-9]+, listening wss 127.0.0.1:$((app_port + 1))/ws; metrics http://127.0.0.1:$((metrics_port + 2))/metrics" "$tmp/out" ||
            fail "no signal line"
        seen_pids+=("$(pid_of nats)" "$(pid_of signal)")
        # Only loopback: the NATS server's listening socket is on 127.0.0.1.
        ss -Hltn "( sport = :$nats_port )" | grep -q "127.0.0.1:$nats_port" || fail "nats not on loopback"
        tr '\0' ' ' <"/proc/$(pid_of signal)/cmdline" | grep -q 'nats://' && fail "NATS URL in argv"
        signal_ready() { curl -sf --max-time 2 "http://127.0.0.1:$((metrics_port + 2))/readyz" >/dev/null; }
        wait_for 15 signal_ready || fail "anteroom-signal not ready: $(tail -n 5 "$state/logs/signal.log")"
        # The upgrade with curl: 101 and the subprotocol, the certificate checked with the state's.
        hdrs=$(curl -s --http1.1 -i -N --max-time 3 --cacert "$state/tls/cert.pem" \
            -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
            -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Sec-WebSocket-Protocol: anteroom.v1' \
            -H "Origin: $origin" "https://127.0.0.1:$((app_port + 1))/ws" | tr -d '\r')
        grep -q '^HTTP/1.1 101' <<<"$hdrs" && grep -qi '^Sec-WebSocket-Protocol: anteroom.v1' <<<"$hdrs" ||
            fail "no wss upgrade with anteroom.v1: $hdrs"
        # hello and welcome with npm `ws` (scripts/deps installs it in tests/integration/signal).
        ws_dir=$(cd "$(dirname "$0")/../signal" && pwd)/node_modules/ws
        if command -v node >/dev/null && [ -d "$ws_dir" ]; then
            printf '%s' "$body" >"$tmp/entry.json"
            said=$(timeout 15 node "$(dirname "$0")/signal_hello.cjs" "$ws_dir" "$signal_url" \
                "$origin" "$state/tls/cert.pem" "$tmp/entry.json" 2>&1)
            [ "$said" = "welcome patient" ] ||
                fail "no welcome for the app's patient token: $said; $(tail -n 5 "$state/logs/signal.log")"
            echo "ok: anteroom-signal on $signal_url: wss, anteroom.v1, the app's token welcomed"
        else
            echo "ok: anteroom-signal on $signal_url upgrades with anteroom.v1 (no node/ws: hello not sent)"
        fi
        # 2d. `anteroom admin drain` drains that node: it stays alive and turns not-ready.
        said=$("$bin" admin drain --port $((metrics_port + 2)) 2>&1) || fail "admin drain: $said"
        grep -q 'draining the signalling node' <<<"$said" || fail "admin drain said: $said"
        signal_draining() {
            ! signal_ready && curl -sf --max-time 2 "http://127.0.0.1:$((metrics_port + 2))/healthz" >/dev/null
        }
        wait_for 10 signal_draining || fail "signal node still ready (or dead) after admin drain"
        echo "ok: anteroom admin drain: the node is alive and not ready"
    fi
fi

# 3. One supervisor per state dir.
out2=$(timeout 10 "$bin" up --state-dir "$state" --turn-port "$turn_port" 2>&1)
rc2=$?
[ "$rc2" -ne 0 ] && grep -q 'another' <<<"$out2" || fail "second anteroom up was not refused: $out2"
echo "ok: second anteroom up refused"

# 4. kill -9 the relay; a new one is started and answers.
kill -9 "$pid1"
wait_for 15 new_relay_pid "$pid1" || fail "no restart after kill -9"
pid2=$(relay_pid)
seen_pids+=("$pid2")
wait_for 15 stun_ok "$turn_port" || fail "restarted relay $pid2 does not answer"
grep -q '"event":"daemon_restart_scheduled"' "$tmp/err" || fail "restart not logged"
echo "ok: relay restarted as pid $pid2 and answers"

# 5. SIGTERM stops everything and anteroom exits 0.
kill -TERM "$up_pid"
deadline=$((SECONDS + 20))
while kill -0 "$up_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
kill -0 "$up_pid" 2>/dev/null && fail "anteroom still running 20 s after SIGTERM"
wait "$up_pid"
rc=$?
up_pid=""
[ "$rc" -eq 0 ] || fail "anteroom exited $rc after SIGTERM, want 0"
for p in "${seen_pids[@]}"; do
    kill -0 "$p" 2>/dev/null && fail "relay pid $p still alive after anteroom stopped"
done
grep -q 'every daemon stopped' "$tmp/out" || fail "no stop message"
echo "ok: SIGTERM stopped every daemon, exit 0"

# 6. A second start on the same state dir prints no password and adds no second demo clinic.
if [ -x "$app_bin" ]; then
    "$bin" up "${up_flags[@]}" >"$tmp/out" 2>"$tmp/err" &
    up_pid=$!
    wait_for 15 app_up || fail "anteroom-app did not come up again"
    seen_pids+=("$(app_pid)" "$(relay_pid)")
    grep -q 'one-time password' "$tmp/out" && fail "a password was printed again"
    grep -q 'demo clinic' "$tmp/out" && fail "a second demo clinic was made"
    kill -TERM "$up_pid"
    wait "$up_pid" || fail "second run did not stop cleanly"
    up_pid=""
    echo "ok: second start: no new password, no second demo clinic"
fi
