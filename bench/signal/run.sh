#!/usr/bin/env bash
# `bash bench/run signal` lands here. Usage: bench/signal/run.sh [full|smoke|transport [ARGS]|N P S]
#   full (default)  full.sh: anteroom-signal beside PeerJS, a Node `ws` relay and the bare relay,
#                   the NATS hop, the 200,000-connection scale run and a node killed under
#                   10,000 sessions (failover)
#   smoke           full.sh with small numbers: checks the harness itself (about a minute)
#   transport       transport.sh: the WebSocket transport alone, TLS libraries side by side
#   N P S           (numbers) transport.sh N P S, as run.sh was called before full.sh existed
set -euo pipefail
here=$(dirname "$0")
case ${1:-full} in
full) exec bash "$here/full.sh" ;;
smoke) exec bash "$here/full.sh" smoke ;;
transport) shift; exec bash "$here/transport.sh" "$@" ;;
[0-9]*) exec bash "$here/transport.sh" "$@" ;;
*) echo "usage: bench/signal/run.sh [full|smoke|transport [connections pairs seconds]]" >&2; exit 2 ;;
esac
