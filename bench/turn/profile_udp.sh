#!/usr/bin/env bash
# Where a relay's CPU per relayed UDP packet goes: one flat-out run of run.sh's UDP test (16
# allocations x 8 packets in flight, ChannelData to the echo peer) against a fresh server, with
# `perf stat` attached to the server for 2 s inside the measurement window. Prints the load
# client's RESULT line, then per relayed packet: the system calls the server made, the buffers
# it handed to the loopback device (one per datagram, or one per GSO message) and its context
# switches (sleeping in epoll_wait and being woken). PROFILE_RECORD=1 also attaches
# `perf record -g` and prints the share of the server's samples under each system call.
# Usage: bench/turn/profile_udp.sh [anteroom|bare|bare-gso] [SIZE]   (default anteroom 160)
# Env: AR_BUILD (build dir, default build/default), BENCH_TURN_BIN (daemon binary), PROFILE_ARGS
#      (more anteroom-turn flags, e.g. "--workers 1").
set -uo pipefail
if [ -z "${AR_BENCH_NETNS:-}" ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec env AR_BENCH_NETNS=1 unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${AR_BUILD:-$ROOT/build/default}
TL=$BUILD/bench/turn/ar-turnload
BF=$BUILD/bench/turn/ar-bareforward
AT=${BENCH_TURN_BIN:-$BUILD/cmd/anteroom-turn/anteroom-turn}
WHO=${1:-anteroom}
SIZE=${2:-160}
TMP=$(mktemp -d /tmp/ar-prof-udp.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
mode=raw
case $WHO in
anteroom)
  # shellcheck disable=SC2086
  "$AT" --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port 34750 --min-port 10000 \
    --max-port 29999 --realm bench --user bench:bench --allow-loopback-peers --no-tls \
    ${PROFILE_ARGS:-} >"$TMP/srv.log" 2>&1 &
  mode=turn
  ;;
bare) "$BF" --listen 127.0.0.1:34750 --peer 127.0.0.1:34700 >"$TMP/srv.log" 2>&1 & ;;
bare-gso) "$BF" --gso --listen 127.0.0.1:34750 --peer 127.0.0.1:34700 >"$TMP/srv.log" 2>&1 & ;;
*) echo "usage: $0 [anteroom|bare|bare-gso] [SIZE]" >&2; exit 2 ;;
esac
srv=$!
pids+=("$srv")
"$TL" peer --listen 127.0.0.1:34700 --secs 60 >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
# The window opens after 1 s of warm-up; perf counts 2 s of the 3 s window.
(sleep 1.3
  perf stat -e net:net_dev_xmit,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvmmsg \
    -e syscalls:sys_enter_epoll_wait,context-switches -x, -o "$TMP/stat.txt" -p "$srv" \
    -- sleep 2 >/dev/null 2>&1) &
pids+=($!)
if [ -n "${PROFILE_RECORD:-}" ]; then
  (sleep 1.3; perf record -g -o "$TMP/perf.data" -p "$srv" -- sleep 2 >/dev/null 2>&1) &
  pids+=($!)
fi
out=$(timeout 60 "$TL" $mode --server 127.0.0.1:34750 --peer 127.0.0.1:34700 --transport udp \
  --size "$SIZE" --allocs 16 --inflight 8 --rate 0 --warmup 1 --secs 3 --server-pid "$srv" \
  --bind 127.11.0.1 --spread 16 | grep '^RESULT')
sleep 0.3
echo "$WHO: $out"
pps=$(tr ' ' '\n' <<<"$out" | sed -n 's/^relayed_pps=//p')
[ -n "$pps" ] && [ "$pps" != 0 ] || { echo "no result" >&2; exit 1; }
echo "per relayed packet over 2 s of the window (at the window's $pps packets/s):"
awk -F, -v n="$((pps * 2))" '$1 ~ /^[0-9]+$/ {printf "  %-34s %8.4f\n", $3, $1 / n}' "$TMP/stat.txt"
echo "(net:net_dev_xmit: buffers handed to loopback, so packets per buffer = 1 / that figure)"
if [ -n "${PROFILE_RECORD:-}" ]; then
  perf report -i "$TMP/perf.data" --children --sort sym --stdio -g none 2>/dev/null >"$TMP/rep.txt"
  echo "share of the server's samples (children included):"
  for s in __x64_sys_sendmmsg __x64_sys_recvmmsg __x64_sys_epoll_wait __udp_gso_segment \
    finish_task_switch.isra.0 entry_SYSCALL_64_after_hwframe; do
    awk -v s="$s" '$NF == s {printf "  %-32s %s\n", s, $1; f = 1} END {if (!f) printf "  %-32s 0%%\n", s}' "$TMP/rep.txt"
  done
fi
