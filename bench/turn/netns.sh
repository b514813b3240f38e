# shellcheck shell=bash
# Sourced first by run.sh, udp_ab.sh and alloc_ab.sh, with their arguments (. netns.sh "$@"):
# the script starts again in a network namespace of its own when the machine allows it, since
# the machine is shared and other suites bind loopback ports too. The servers' CPU and RSS are
# still read from /proc (same PID space).
if [ -z "${AR_BENCH_NETNS:-}" ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec env AR_BENCH_NETNS=1 unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
