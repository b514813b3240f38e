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
check 2 'arrive with anteroom-app' admin
check 2 'arrive with anteroom-app' admin clinic add
check 2 'unknown option' up --no-such-flag
check 2 'turn-port' up --turn-port 70000
[ "$fail" -eq 0 ] && echo "ok: cli"
exit "$fail"
