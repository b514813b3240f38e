#!/usr/bin/env bash
# Runs the browser end-to-end tests (CTest e2e_*): run.sh <build dir> <test file>...
# Skips (77) only without playwright-core (scripts/deps runs npm ci here); a missing Chromium,
# certutil or anteroom binary is a broken set-up (scripts/deps installs them; CMake builds it),
# so it fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export AR_BUILD_DIR=${1:?build dir}
shift
[ -d "$here/node_modules/playwright-core" ] || { echo "skip: npm ci in tests/e2e first (scripts/deps)"; exit 77; }
[ -x "${AR_CHROMIUM:-/usr/bin/chromium}" ] || { echo "FAIL: no Chromium (scripts/deps)"; exit 1; }
command -v certutil >/dev/null || { echo "FAIL: no certutil (scripts/deps: libnss3-tools)"; exit 1; }
[ -x "$AR_BUILD_DIR/cmd/anteroom/anteroom" ] || { echo "FAIL: anteroom not built"; exit 1; }
cd "$here"
# The per-test timeout sits under CTest's, so a stuck test still runs its after() hook, which
# stops the stack and the browsers by PID.
exec node --test --test-concurrency=1 --test-timeout=220000 "$@"
