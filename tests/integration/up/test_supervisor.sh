#!/usr/bin/env bash
# The supervisor's policies, driven with a stand-in daemon (a shell script named anteroom-turn in
# a temporary ANTEROOM_BIN_DIR) so each one can be forced quickly:
#   - no binary built: reported, exit 1 (nats-server too: a bin dir is self-contained);
#   - the secret reaches the daemon through its environment; its stderr lands in logs/turn.log;
#   - a daemon that keeps dying is restarted after 0.5 s, then 1 s (backoff), and a stop during
#     the wait exits 0 at once;
#   - a daemon that ignores SIGTERM survives the first Ctrl-C and is killed by the second.
# The real relay is covered by test_up.sh. Binds no port; kills only PIDs it started or saw.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin=$1
tmp=$(mktemp -d /tmp/anteroom-sup-test.XXXXXX)
up_pid=""
seen_pids=()
trap up_cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- stdout"
    cat "$tmp/out" 2>/dev/null
    echo "--- stderr"
    tail -n 20 "$tmp/err" 2>/dev/null
    exit 1
}
out_has() { grep -qE -- "$1" "$tmp/out"; }
stop_up() { # stop_up <signal>...: send each signal, then expect exit 0 within 5 s
    local s
    for s in "$@"; do
        kill "-$s" "$up_pid"
        sleep 0.3
    done
    wait_for 5 bash -c "! kill -0 $up_pid 2>/dev/null" || fail "anteroom still running"
    wait "$up_pid"
    local rc=$?
    up_pid=""
    [ "$rc" -eq 0 ] || fail "anteroom exited $rc, want 0"
}
start_up() { # start_up <mode>: FAKE_MODE tells the stand-in what to do
    # Emptied here, not only by the background job's redirection: otherwise a check right after
    # start_up could still read the previous run's "turn: pid" line.
    : >"$tmp/out"
    : >"$tmp/err"
    FAKE_MODE=$1 ANTEROOM_BIN_DIR=$tmp/bin "$bin" up --state-dir "$tmp/state" --no-tls \
        >"$tmp/out" 2>"$tmp/err" &
    up_pid=$!
}

# No binary: reported and skipped, and with nothing to run anteroom up fails.
mkdir -p "$tmp/bin"
ANTEROOM_BIN_DIR=$tmp/bin "$bin" up --state-dir "$tmp/state" --no-tls >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] || fail "no daemon built: exit $rc, want 1"
out_has "^turn: not built \(no $tmp/bin/anteroom-turn\), skipped" || fail "missing daemon not reported"
grep -q 'no daemon is built' "$tmp/err" || fail "no 'nothing built' message"
out_has '^nats: nats-server is not installed \(not in --bin-dir\), skipped' ||
    fail "a system binary missing from the bin dir not reported"
echo "ok: a daemon that is not built is reported, exit 1"

cat >"$tmp/bin/anteroom-turn" <<'EOF'
#!/usr/bin/env bash
echo "stand-in $$ secret-sha $(printf %s "$ANTEROOM_TURN_STATIC_AUTH_SECRET" | sha256sum | cut -c1-64)" >&2
case "$FAKE_MODE" in
crash) exit 3 ;;
stubborn) trap '' TERM; echo "stand-in $$ trap set" >&2; while :; do sleep 0.1; done ;;
esac
EOF
chmod +x "$tmp/bin/anteroom-turn"

# A daemon that keeps dying: restarted with growing delays; a stop while waiting exits at once.
start_up crash
wait_for 5 out_has '^turn: restarting in 1\.0 s' || fail "no second restart"
out_has '^turn: exited \(pid [0-9]+, status 3\)' || fail "exit status not reported"
out_has '^turn: restarting in 0\.5 s' || fail "first restart not after 0.5 s"
[ "$(grep -n 'restarting in 0.5' "$tmp/out" | head -n 1 | cut -d: -f1)" -lt \
    "$(grep -n 'restarting in 1.0' "$tmp/out" | head -n 1 | cut -d: -f1)" ] ||
    fail "backoff out of order"
grep -q '"event":"daemon_restart_scheduled"' "$tmp/err" || fail "restart not logged"
want=$(printf %s "$(cat "$tmp/state/secrets/turn-static-auth-secret")" | sha256sum | cut -c1-64)
grep -q "secret-sha $want" "$tmp/state/logs/turn.log" ||
    fail "the daemon did not get the secret in its environment, or its stderr is not logged"
stop_up INT
echo "ok: crash loop restarted after 0.5 s then 1 s; secret in env; stderr in logs/turn.log"

# A daemon that ignores SIGTERM: the first Ctrl-C leaves it, the second kills it.
start_up stubborn
wait_for 5 out_has '^turn: pid [0-9]+' || fail "stand-in not started"
pid=$(grep -oE '^turn: pid [0-9]+' "$tmp/out" | head -n 1 | grep -oE '[0-9]+$')
seen_pids+=("$pid")
# The stand-in says in its log once its trap is set; a fixed sleep raced on a busy machine.
wait_for 30 grep -q "stand-in $pid trap set" "$tmp/state/logs/turn.log" ||
    fail "stand-in $pid never set its trap; its log: $(tail -n 5 "$tmp/state/logs/turn.log" 2>&1)"
kill -INT "$up_pid"
sleep 0.5
kill -0 "$pid" 2>/dev/null || fail "stubborn daemon died on SIGTERM (test stand-in broken)"
kill -0 "$up_pid" 2>/dev/null || fail "anteroom left before its daemon was gone"
stop_up INT
kill -0 "$pid" 2>/dev/null && fail "daemon $pid survived the second Ctrl-C"
out_has 'forced stop' || fail "forced stop not reported"
echo "ok: second Ctrl-C kills a daemon that ignores SIGTERM, exit 0"
