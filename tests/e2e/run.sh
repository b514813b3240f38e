#!/usr/bin/env bash
# Runs the browser end-to-end tests (CTest e2e_*): run.sh <build dir> <test file>...
# Skips (77) when something they need is missing: playwright-core (scripts/deps runs npm ci
# here), Chromium or certutil.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export AR_BUILD_DIR=${1:?build dir}
shift
[ -d "$here/node_modules/playwright-core" ] || { echo "skip: npm ci in tests/e2e first (scripts/deps)"; exit 77; }
[ -x "${AR_CHROMIUM:-/usr/bin/chromium}" ] || { echo "skip: no Chromium"; exit 77; }
command -v certutil >/dev/null || { echo "skip: no certutil (libnss3-tools)"; exit 77; }
[ -x "$AR_BUILD_DIR/cmd/anteroom/anteroom" ] || { echo "skip: anteroom not built"; exit 77; }
cd "$here"
# The per-test timeout sits under CTest's, so a stuck test still runs its after() hook, which
# stops the stack and the browsers by PID.
exec node --test --test-concurrency=1 --test-timeout=150000 "$@"
