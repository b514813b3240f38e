#!/usr/bin/env bash
# The subcommands' exit codes and texts; starts no daemon and binds no port.
set -uo pipefail
bin=$1
fail=0
check() { # check <want rc> <grep pattern> <args...>
    local want=$1 pat=$2 out rc
    shift 2
    out=$("$bin" "$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$want" ] || ! grep -qE -- "$pat" <<<"$out"; then
        echo "FAIL: anteroom $* -> rc $rc (want $want), output:"
        echo "$out"
        fail=1
    fi
}
check 0 'usage: anteroom <command>' --help
check 0 'usage: anteroom <command>' help
check 2 'usage: anteroom <command>'
check 2 "unknown command 'frobnicate'" frobnicate
check 0 'usage: anteroom up' up --help
check 0 '--state-dir' up --help
check 0 '^anteroom [0-9]+\.[0-9]+\.[0-9]+.*libuv.*OpenSSL' version
check 2 'usage: anteroom admin' admin
check 2 'usage: anteroom admin' admin clinic add
check 0 'rotate-keys' admin --help
# drain talks to a node's operator port, not to the store (the running case is in test_up.sh).
check 2 'takes a port number' admin drain --port 0
check 2 'unknown argument' admin drain --bogus
check 1 'cannot reach 127.0.0.1:1: ' admin drain --port 1
# The admin commands on a scratch store (exit codes and what they print).
adm=$(mktemp -d /tmp/anteroom-admin-test.XXXXXX)
trap 'rm -rf "$adm"' EXIT
check 0 'clinic 1 created' admin --state-dir "$adm" create-clinic --name Clinic --jurisdiction eu
check 0 'one-time password \(shown once\): [A-Za-z0-9_-]{24}$' admin --state-dir "$adm" \
    create-account --email Op@Example.org --name Op --operator --fast-hash
check 1 'exists already' admin --state-dir "$adm" create-account --email op@example.org \
    --name Op --fast-hash
check 0 'one-time password' admin --state-dir "$adm" create-account --email p@example.org \
    --name P --clinic 1 --role provider --fast-hash
check 1 'not allowed' admin --state-dir "$adm" add-role --email p@example.org --clinic 1 \
    --role emperor
check 0 'created: /api/v1/entry/1/front' admin --state-dir "$adm" create-area --clinic 1 \
    --slug front --name Front --time-zone Europe/Berlin --hours 'mon-fri 08:00-17:00'
check 1 'not allowed' admin --state-dir "$adm" create-area --clinic 1 --slug x --name X \
    --time-zone ../../etc/passwd
check 0 'enrols again' admin --state-dir "$adm" reset-mfa --email P@example.org
check 1 'no such account' admin --state-dir "$adm" reset-mfa --email nobody@example.org
check 0 'signing key k[A-Za-z0-9_-]+ is now used' admin --state-dir "$adm" rotate-keys
check 0 'new TURN secret .*: [A-Za-z0-9_-]{43}$' admin --state-dir "$adm" rotate-turn-secret
check 2 'usage: anteroom admin' admin --state-dir "$adm" create-clinic --name X
if command -v sqlite3 >/dev/null; then
    n=$(sqlite3 "$adm/app.db" "SELECT count(*) FROM audit_log WHERE event LIKE 'admin_%' OR event = 'mfa_reset'")
    [ "$n" -ge 7 ] || { echo "FAIL: $n admin audit entries"; fail=1; }
    n=$(sqlite3 "$adm/app.db" "SELECT count(*) FROM token_keys")
    [ "$n" -eq 1 ] || { echo "FAIL: $n signing keys"; fail=1; }
fi
check 2 'unknown option' up --no-such-flag
check 2 'turn-port' up --turn-port 70000
[ "$fail" -eq 0 ] && echo "ok: cli"
exit "$fail"
