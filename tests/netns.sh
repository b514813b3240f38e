#!/usr/bin/env bash
# Runs a test command in a network namespace of its own, with loopback up (127.0.0.1, ::1 and
# 127.0.0.2 for tests that need a second local address): every port on loopback is the test's,
# so tests that bind ports run in parallel without clashing with each other or with anything
# else on the machine. tests/CMakeLists.txt wraps port-binding tests in this only when
# `unshare -n` works here (root); elsewhere they keep RESOURCE_LOCK ports and run one at a time.
# Without namespaces (not root) the command runs as it is.
# Usage: netns.sh <command> [args...]
set -euo pipefail
if [ -n "${AR_NETNS:-}" ] || ! unshare -n true 2>/dev/null; then exec "$@"; fi
exec env AR_NETNS=1 unshare -n bash -c \
  'ip link set lo up && { ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true; } && exec "$@"' \
  netns "$@"
