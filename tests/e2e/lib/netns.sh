#!/usr/bin/env bash
# Runs browser end-to-end test files that need the network-namespace topology (lib/netns.mjs).
# Usage: lib/netns.sh <build dir> <seconds> <file.test.mjs>...
# Exit 77 (CTest's skip) only when the machine cannot run them: not root, no `ip netns`, no
# nft, or no playwright-core (offline and never installed). Everything the tests start is
# stopped by PID and the namespaces removed by the tests themselves; `timeout` sends SIGTERM
# first, which lib/netns.mjs turns into the same teardown.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$1 secs=$2
shift 2
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
ip netns list >/dev/null 2>&1 || skip "\`ip netns\` is unavailable (iproute2)"
command -v nft >/dev/null || skip "nft is unavailable (nftables)"
command -v certutil >/dev/null || { echo "certutil is missing (scripts/deps: libnss3-tools)"; exit 1; }
command -v node >/dev/null || skip "node is not installed"
[ -x /usr/bin/chromium ] || { echo "/usr/bin/chromium is missing (scripts/deps)"; exit 1; }
cd "$here"
if [ ! -d node_modules/playwright-core ]; then
  timeout 120 npm ci --no-audit --no-fund >/dev/null 2>&1 ||
    timeout 120 npm install --no-audit --no-fund >/dev/null 2>&1 || true
fi
[ -d node_modules/playwright-core ] || skip "npm package playwright-core unavailable (offline?)"
export AR_BUILD_DIR=$build AR_ANTEROOM_BIN=$build/cmd/anteroom/anteroom
exec timeout -k 15 "$secs" node --test --test-concurrency=1 "$@"
