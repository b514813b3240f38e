# Shared helpers for the anteroom-turn integration tests. Sourced, not run.
#
# Every script takes the server binary as its first argument, so the same checks run against
# Debian's coturn (turnserver) while they are developed and against anteroom-turn in CTest:
#   bash interop.sh /usr/bin/turnserver udp
#   bash interop.sh build/default/cmd/anteroom-turn/anteroom-turn udp
#
# A script re-runs itself under `timeout` with the budget in $AR_BUDGET (seconds), and when it
# can (root, util-linux unshare) in fresh network and PID namespaces: ports cannot clash with
# anything else on the machine, and when the script ends or is killed the kernel ends every
# process it started.

set -uo pipefail

AR_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AR_PASS=0
AR_FAIL=0
AR_SERVER_PID=
AR_SERVER_LOG=
AR_SERVER_RUNS=0
AR_UCLIENT_RUNS=0
AR_BG_PIDS=
AR_UC_PID=()

ar_die() { # ar_die <message>: a broken environment is a failure, never a skip
    echo "FATAL: $*" >&2
    exit 2
}

ar_pass() {
    AR_PASS=$((AR_PASS + 1))
    echo "PASS $*"
}

ar_fail() {
    AR_FAIL=$((AR_FAIL + 1))
    echo "FAIL $*"
}

ar_check() { # ar_check <description> <command...>: passes when the command succeeds
    local what=$1
    shift
    if "$@"; then ar_pass "$what"; else ar_fail "$what"; fi
}

ar_require() { # ar_require <tool...>
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 ||
            ar_die "'$t' is not installed (run scripts/deps; packages coturn, stun-client, iproute2, openssl, python3)"
    done
}

# ar_init <server> "$@": re-executes inside namespaces if possible, then sets AR_SERVER, AR_KIND,
# the ports and a work directory.
ar_init() {
    local server=$1
    [ -n "$server" ] || ar_die "usage: $0 <server-binary> [case]"
    [ -x "$server" ] || command -v "$server" >/dev/null 2>&1 || ar_die "server '$server' not found or not executable"
    ar_require python3 openssl timeout
    if [ -z "${AR_INNER:-}" ]; then
        # Outer run: the whole test gets a time budget (CTest's TIMEOUT minus a margin, so the
        # test says why it stopped), and runs in namespaces when it can.
        export AR_INNER=1
        local budget=${AR_BUDGET:-600} rc cmd=(bash "$0" "${AR_ARGS[@]}")
        if [ -z "${AR_NO_SANDBOX:-}" ] && unshare -n -p -f --kill-child --mount-proc true 2>/dev/null; then
            export AR_IN_SANDBOX=1
            cmd=(unshare -n -p -f --kill-child --mount-proc "${cmd[@]}")
        fi
        timeout -k 5 "$budget" "${cmd[@]}"
        rc=$?
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "FAIL: the test did not finish within its budget of $budget s"
        fi
        exit "$rc"
    fi
    AR_SERVER=$(command -v "$server")
    # AR_SERVER_KIND=coturn marks a wrapper around coturn (used to prove checks can fail).
    case "${AR_SERVER_KIND:-$(basename "$AR_SERVER")}" in
        turnserver | coturn) AR_KIND=coturn ;;
        *) AR_KIND=anteroom ;;
    esac
    if [ -n "${AR_IN_SANDBOX:-}" ]; then
        ar_require ip
        ip link set lo up || ar_die "cannot bring up loopback in the test namespace"
        # A second loopback address lets binding checks tell the client's address from the server's.
        ip addr add 127.0.0.2/8 dev lo 2>/dev/null
        AR_PORT=3478 AR_TLS_PORT=5349 AR_PEER_PORT=3480 AR_MIN_PORT=49152 AR_MAX_PORT=49351
        AR_CLIENT_IP=127.0.0.2
    else
        # Shared host: pick ports nobody holds now and a random relay range.
        AR_PORT=$(ar_free_port) AR_TLS_PORT=$(ar_free_port) AR_PEER_PORT=$(ar_free_port)
        AR_MIN_PORT=$((40000 + (RANDOM % 100) * 200)) AR_MAX_PORT=$((AR_MIN_PORT + 199))
        AR_CLIENT_IP=127.0.0.1
    fi
    if [ -n "${AR_LATE_BIND:-}" ]; then
        # A relay range outside the kernel's ephemeral ports (and ar_free_port's): anteroom-turn
        # then binds relay sockets at the first permission (latebind.sh checks the choice).
        AR_MIN_PORT=$((10000 + (RANDOM % 40) * 200)) AR_MAX_PORT=$((AR_MIN_PORT + 199))
    fi
    AR_WORK=$(mktemp -d "${AR_WORK_ROOT:-${TMPDIR:-/tmp}}/ar-turn-it.XXXXXX")
    trap ar_cleanup EXIT
    echo "server: $AR_SERVER ($AR_KIND), namespace: ${AR_IN_SANDBOX:-no}, work: $AR_WORK"
}

ar_free_port() { # a port free for both UDP and TCP on 127.0.0.1 and ::1 right now
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 32000)
    try:
        for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(fam, typ) as s:
                    s.bind((host, p))
    except OSError:
        continue
    print(p)
    break
EOF
}

ar_cleanup() {
    local pid
    for pid in $AR_SERVER_PID $AR_BG_PIDS "${AR_UC_PID[@]}"; do
        kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if [ "$AR_FAIL" -eq 0 ] && [ -z "${AR_KEEP:-}" ]; then
        rm -rf "$AR_WORK"
    else
        echo "logs kept in $AR_WORK"
    fi
}

# For the single-purpose run.sh scripts of tests/integration/turn_*: CTest starts them in a
# network namespace of their own (${AR_NETNS}, tests/netns.sh), so they use fixed ports and do
# not enter one themselves. ar_rs_begin [SIGNAL] makes the work directory $dir (also $AR_WORK,
# for ar_cert) and the list pids, whose processes are stopped (SIGTERM by default) and waited
# for, and $dir removed, on exit.
ar_rs_begin() {
    AR_RS_SIG=${1:-TERM}
    dir=$(mktemp -d)
    AR_WORK=$dir
    pids=()
    trap ar_rs_cleanup EXIT
}

ar_rs_cleanup() {
    local p
    for p in "${pids[@]}"; do kill -"$AR_RS_SIG" "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}

ar_cert() { # a self-signed P-256 certificate in $AR_WORK/cert.pem, key in $AR_WORK/key.pem
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -keyout "$AR_WORK/key.pem" -out "$AR_WORK/cert.pem" 2>/dev/null ||
        ar_die "openssl could not make a test certificate"
}

# ar_server_start <flags...>: starts the server on 127.0.0.1 (and ::1) with coturn's flag names
# and waits until it answers a STUN Binding request on UDP.
ar_server_start() {
    local args=(--listening-ip=127.0.0.1 --listening-ip=::1 --listening-port="$AR_PORT"
        --min-port="$AR_MIN_PORT" --max-port="$AR_MAX_PORT" "$@")
    if [ "$AR_KIND" = coturn ]; then
        # coturn-only switches: no config file, no telnet CLI, log to stdout, no DTLS; and coturn
        # needs the credential mechanism named when users are given.
        args=(-n --no-cli --log-file=stdout --simple-log --no-dtls "${args[@]}")
        case " $* " in *" --user="*) args+=(--lt-cred-mech) ;; esac
        case " $* " in *" --cert="*) ;; *) args+=(--no-tls) ;; esac
    fi
    AR_SERVER_LOG=$AR_WORK/server.$((++AR_SERVER_RUNS)).log
    echo "start: $AR_SERVER ${args[*]}" >"$AR_SERVER_LOG"
    "$AR_SERVER" "${args[@]}" >>"$AR_SERVER_LOG" 2>&1 &
    AR_SERVER_PID=$!
    if ! python3 "$AR_HERE/stun_ping.py" 127.0.0.1 "$AR_PORT" 10; then
        tail -20 "$AR_SERVER_LOG"
        ar_die "server did not answer a Binding request within 10 s"
    fi
}

ar_server_alive() { # the server process still runs
    [ -n "$AR_SERVER_PID" ] && kill -0 "$AR_SERVER_PID" 2>/dev/null
}

# ar_server_stop: SIGTERM, then checks that the server exited cleanly within 10 s and that its
# output carries no sanitizer report (under the asan preset the server is ASan+UBSan built, and
# LeakSanitizer runs at exit).
ar_server_stop() {
    local pid=$AR_SERVER_PID status i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        ar_fail "server stops within 10 s of SIGTERM"
    fi
    wait "$pid"
    status=$?
    AR_SERVER_PID=
    # coturn has no SIGTERM handler and dies of the signal (143); ours must exit cleanly so that
    # LeakSanitizer gets to run.
    if [ "$status" -eq 0 ] || { [ "$AR_KIND" = coturn ] && [ "$status" -eq 143 ]; }; then
        ar_pass "server exits cleanly on SIGTERM"
    else
        ar_fail "server exits cleanly on SIGTERM (status $status; log $AR_SERVER_LOG)"
    fi
    if grep -qE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$AR_SERVER_LOG"; then
        grep -E -A20 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$AR_SERVER_LOG" | head -40
        ar_fail "no sanitizer report in the server's output"
    else
        ar_pass "no sanitizer report in the server's output"
    fi
}

# ar_rest_cred <secret> <user> <seconds from now>: prints "username password" for the TURN REST
# scheme (username "expiry:user", password base64(HMAC-SHA1(secret, username))).
ar_rest_cred() {
    python3 - "$@" <<'EOF'
import base64, hashlib, hmac, sys, time
secret, user, delta = sys.argv[1], sys.argv[2], int(sys.argv[3])
name = "%d:%s" % (int(time.time()) + delta, user)
mac = hmac.new(secret.encode(), name.encode(), hashlib.sha1).digest()
print(name, base64.b64encode(mac).decode())
EOF
}

# turnutils_uclient runs spend most of their time waiting (each session starts sending 1 to 6 s
# after it connects, at random), so a script starts its runs together and checks each when all
# are done: ar_uclient_start for each, then ar_uclient_wait. They share the server, which must
# then serve them all at once without losing a message.
AR_UC_WHAT=() AR_UC_WANT=() AR_UC_LOG=() AR_UC_PID=()

# ar_uclient_start <description> <messages expected at least> <uclient flags...>: starts one
# uclient session set against 127.0.0.1 (or $AR_UC_HOST) in the background.
ar_uclient_start() {
    local what=$1 want=$2 log
    shift 2
    log=$AR_WORK/uclient.$((++AR_UCLIENT_RUNS)).log
    echo "turnutils_uclient $* ${AR_UC_HOST:-127.0.0.1}" >"$log"
    timeout 40 turnutils_uclient "$@" "${AR_UC_HOST:-127.0.0.1}" >>"$log" 2>&1 &
    AR_UC_WHAT+=("$what") AR_UC_WANT+=("$want") AR_UC_LOG+=("$log") AR_UC_PID+=($!)
}

# ar_uclient_wait: waits for every run started and checks each: exit status 0, at least the
# messages expected sent, every one received back, none lost.
ar_uclient_wait() {
    local i rc sent recv lost log
    for i in "${!AR_UC_PID[@]}"; do
        wait "${AR_UC_PID[$i]}"
        rc=$?
        log=${AR_UC_LOG[$i]}
        sent='' recv='' lost=''
        read -r sent recv < <(sed -nE 's/.*start_mclient: tot_send_msgs=([0-9]+), tot_recv_msgs=([0-9]+).*/\1 \2/p' "$log" | tail -1)
        lost=$(sed -nE 's/.*Total lost packets ([0-9]+) .*/\1/p' "$log" | tail -1)
        if [ "$rc" -eq 0 ] && [ -n "$sent" ] && [ "$sent" -ge "${AR_UC_WANT[$i]}" ] &&
            [ "$recv" = "$sent" ] && [ "$lost" = 0 ]; then
            ar_pass "${AR_UC_WHAT[$i]}: sent $sent, received $recv, lost $lost"
        else
            tail -5 "$log"
            ar_fail "${AR_UC_WHAT[$i]}: uclient status $rc, sent ${sent:-?} (want >= ${AR_UC_WANT[$i]}), received ${recv:-?}, lost ${lost:-?} (log $log)"
        fi
    done
    AR_UC_WHAT=() AR_UC_WANT=() AR_UC_LOG=() AR_UC_PID=()
}

# ar_uclient <description> <messages expected at least> <uclient flags...>: one run, checked.
ar_uclient() {
    ar_uclient_start "$@"
    ar_uclient_wait
}

ar_finish() { # prints the tally; the exit status is the verdict
    echo "$AR_PASS checks passed, $AR_FAIL failed"
    [ "$AR_PASS" -gt 0 ] || ar_die "no check ran"
    [ "$AR_FAIL" -eq 0 ]
}
