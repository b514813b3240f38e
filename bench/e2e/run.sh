#!/usr/bin/env bash
# Join-to-first-frame in real Chromium (docs/performance.md, "Browser call set-up"): from the
# clinician's "Admit and join" click to the first decoded frame on both sides, median of
# BENCH_CALLS (default 10) calls, direct and relay-only, beside bare WebRTC between the same
# browsers. Needs the default preset built and tests/e2e's playwright-core (scripts/deps).
# Bounded by timeout; every process is stopped by PID by the libraries it uses.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x build/default/cmd/anteroom/anteroom ] || { echo "build first (cmake --build --preset default)" >&2; exit 1; }
[ -d tests/e2e/node_modules/playwright-core ] ||
  (cd tests/e2e && timeout 120 npm ci --no-audit --no-fund >/dev/null 2>&1) ||
  { echo "tests/e2e: npm ci failed (offline?)" >&2; exit 1; }
export AR_BUILD_DIR=$PWD/build/default
exec timeout -k 15 600 node bench/e2e/bench.mjs "${BENCH_CALLS:-10}"
