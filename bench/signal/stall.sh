#!/usr/bin/env bash
# Checks that ar_bench_sigload keeps its held connections alive while its opens stall
# (docs/performance.md, "Scale run: a load generator that answers pings while it opens").
# Run as root in a fresh network namespace: `unshare -n bash bench/signal/stall.sh`.
# The scale phase opens 20,000 connections into a node of 2 workers; once 6,000 client
# connections are established, every new SYN from the client addresses (127.1.0.0/16) is dropped
# for 75 s, longer than the node's 60 s idle rule, then allowed again. A load generator that
# blocks in connect() meanwhile leaves its held connections without a pong and the node closes
# them: still_open falls short of conns. The nft table lives and dies with the namespace.
set -u
cd "$(dirname "$0")/../.." || exit 2
[ "$(id -u)" = 0 ] || { echo "stall.sh: needs root (nft), in its own namespace (unshare -n)" >&2; exit 2; }
ip link set lo up
(
  until [ "$(ss -Htn state established src 127.1.0.0/16 | wc -l)" -ge 6000 ]; do sleep 0.2; done
  nft add table inet stall
  nft add chain inet stall in '{ type filter hook input priority 0; }'
  nft add rule inet stall in ip saddr 127.1.0.0/16 tcp flags syn drop
  echo "stall: SYNs dropped from $(date -u +%T)" >&2
  sleep 75
  nft delete table inet stall
  echo "stall: SYNs allowed from $(date -u +%T)" >&2
) &
stall=$!
SCALE=20000 SCALE_WORKERS=2 SCALE_PROCS=2 SCALE_HOLD=70 PHASES=scale SERVERS=anteroom \
  bash bench/run signal 2>&1 | grep -E "stall|label=|stops|failed"
wait "$stall"
