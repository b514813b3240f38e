#!/usr/bin/env bash
# Where anteroom-turn's CPU per Allocate goes: one ar-turnload run of N allocations (Allocate only,
# 64 in flight, each client socket on its own source address, as in run.sh) against a fresh
# anteroom-turn, with `perf record -g` attached to the server for the allocation phase only
# (--alloc-only: no CreatePermission or ChannelBind follows; stopped at the ALLOC line). Prints the ALLOC line and the share of
# the server's samples under each system call and in the scheduler's context switch.
# PROFILE_TOP=N also lists the N symbols (kernel and user space) with the most samples of their
# own. With PROFILE_TOOL=strace, `strace -c -f` is attached instead and prints the server's system
# calls in the allocation phase with their count per Allocate.
# PROFILE_SETUP=1 profiles usable allocations instead: each Allocate is followed by
# CreatePermission and ChannelBind (as alloc_ab.sh's BENCH_SETUP=1), stopped at the BIND line.
# Usage: bench/turn/profile_alloc.sh [N]   (default 15000; needs perf and root for the namespace)
# Env: AR_BUILD (build dir, default build/default), BENCH_TURN_BIN (daemon binary).
set -uo pipefail
if [ -z "${AR_BENCH_NETNS:-}" ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec env AR_BENCH_NETNS=1 unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
TOOL=${PROFILE_TOOL:-perf}
command -v "$TOOL" >/dev/null || { echo "$TOOL is not installed" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${AR_BUILD:-$ROOT/build/default}
TL=$BUILD/bench/turn/ar-turnload
AT=${BENCH_TURN_BIN:-$BUILD/cmd/anteroom-turn/anteroom-turn}
N=${1:-15000}
if [ "${PROFILE_SETUP:-0}" = 1 ]; then ONLY=() UNTIL=BIND; else ONLY=(--alloc-only) UNTIL=ALLOC; fi
TMP=$(mktemp -d /tmp/ar-prof-turn.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "${PROFILE_KEEP:-}" ] && cp "$TMP/perf.data" "$PROFILE_KEEP" 2>/dev/null; rm -rf "$TMP"
}
trap cleanup EXIT
"$AT" --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port 34750 --min-port 10000 \
  --max-port 29999 --realm bench --user bench:bench --allow-loopback-peers --no-tls \
  >"$TMP/turn.log" 2>&1 &
srv=$!
pids+=("$srv")
"$TL" peer --listen 127.0.0.1:34700 --secs 120 >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
if [ "$TOOL" = strace ]; then
  strace -c -f -p "$srv" -o "$TMP/strace.txt" >/dev/null 2>&1 &
else
  perf record -F 10000 -g -p "$srv" -o "$TMP/perf.data" >/dev/null 2>&1 &
fi
perf_pid=$!
pids+=("$perf_pid")
sleep 0.5
timeout 120 "$TL" turn --server 127.0.0.1:34750 --peer 127.0.0.1:34700 --allocs "$N" --window 64 \
  --no-data "${ONLY[@]}" --hold 2 --server-pid "$srv" --bind 127.11.0.1 --spread "$N" >"$TMP/tl.out" 2>&1 &
tl=$!
pids+=("$tl")
for _ in $(seq 1200); do grep -q "^$UNTIL" "$TMP/tl.out" && break; sleep 0.05; done
kill -INT "$perf_pid"
wait "$perf_pid" 2>/dev/null
grep -E "^(ALLOC|$UNTIL)" "$TMP/tl.out" || { echo "no $UNTIL line:"; cat "$TMP/tl.out"; exit 1; }
if [ "$TOOL" = strace ]; then
  echo "the server's system calls in the allocation phase (strace -c -f; calls per Allocate):"
  awk -v n="$N" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
    printf "  %-16s %8d  %.3f\n", $NF, $4, $4 / n }' "$TMP/strace.txt"
  exit 0
fi
perf report -i "$TMP/perf.data" --children --sort sym --stdio -g none 2>/dev/null >"$TMP/rep.txt"
echo "share of the server's samples in the allocation phase (children included):"
for s in __x64_sys_sendmmsg __x64_sys_recvmmsg __x64_sys_epoll_wait __x64_sys_socket \
  __x64_sys_bind __x64_sys_close __x64_sys_setsockopt __x64_sys_epoll_ctl __x64_sys_sched_yield \
  finish_task_switch.isra.0 entry_SYSCALL_64_after_hwframe; do
  awk -v s="$s" '$NF == s {printf "  %-32s %s\n", s, $1; f = 1} END {if (!f) printf "  %-32s 0%%\n", s}' "$TMP/rep.txt"
done
echo "(entry_SYSCALL_64_after_hwframe: all system calls together; finish_task_switch: the cost of"
echo " being switched out and in, part of the epoll_wait, sched_yield and sendmmsg shares)"
if [ -n "${PROFILE_TOP:-}" ]; then
  echo "the $PROFILE_TOP symbols with the most samples of their own (PROFILE_TOP):"
  perf report -i "$TMP/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' | head -n "$PROFILE_TOP"
fi
