#!/usr/bin/env bash
# Two relays' load boards joined over a real two-server NATS cluster (Debian's nats-server):
# a report published through one server reaches the other relay's board; malformed reports are
# refused and counted. Usage: run.sh <bus_check binary>
set -euo pipefail
check=$1
command -v nats-server >/dev/null || { echo "nats-server is not installed (scripts/deps)"; exit 1; }

. "$(dirname "$0")/../turn/lib.sh"
ar_rs_begin

# Both servers pick their own ports (tests/nats-pair.sh).
. "$(dirname "$0")/../../nats-pair.sh"
ar_nats_pair "$dir" || exit 1

"$check" "nats://127.0.0.1:$nats_c1" "nats://127.0.0.1:$nats_c2"
