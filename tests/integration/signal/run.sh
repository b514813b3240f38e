#!/usr/bin/env bash
# anteroom-signal end to end: two NATS servers, signalling nodes, clients on npm `ws`.
# Usage: run.sh <anteroom-signal binary> [test files, by default all but stop.test.mjs, which
# CTest runs alone as signal_stop]. Installs `ws` from the npm registry when it can; with no
# registry (offline) an existing node_modules is used; with neither the test is skipped (77).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "node is not installed"; exit 77; }
command -v nats-server >/dev/null || { echo "nats-server is not installed (scripts/deps)"; exit 1; }
cd "$here"
if [ ! -d node_modules/ws ]; then
  timeout 120 npm ci --no-audit --no-fund >/dev/null 2>&1 ||
    timeout 120 npm install --no-audit --no-fund >/dev/null 2>&1 || true
fi
[ -d node_modules/ws ] || { echo "npm package ws unavailable (offline?)"; exit 77; }
export AR_SIGNAL_BIN=$1
# node:test runs each file in its own process; every process it starts is killed by PID at the
# end of its file (lib.mjs), and the timeout bounds the whole run. The two files start their own
# NATS servers and nodes on free ports, and their tests mostly wait on the server's timers (the
# 10 s hello timeout, the rate limiter, a slow reader's queue), so they run side by side, in a
# network namespace of their own where the machine allows (tests/netns.sh).
files=("${@:2}")
[ ${#files[@]} -gt 0 ] ||
  files=(call.test.mjs hostile.test.mjs overload.test.mjs exactly_once.test.mjs admit.test.mjs
    seen.test.mjs remove.test.mjs ended.test.mjs purge.test.mjs drain.test.mjs move.test.mjs)
exec bash ../../netns.sh timeout 280 node --test --test-concurrency=2 "${files[@]}"
