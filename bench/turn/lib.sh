# shellcheck shell=bash
# Shared by run.sh, udp_ab.sh and alloc_ab.sh (sourced, not run): stopping what a script
# started, waiting for a port, coturn's configuration, and reading and summing up the load
# generator's figures, so the scripts start and stop their servers and compute their medians the
# same way. The caller sets TMP (its scratch directory) and adds every PID it starts
# to the array PIDS.
PIDS=()

# Stops one process we started: SIGTERM, then SIGKILL after 5 s.
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # wait_port <tcp|udp> <port>: up to 10 s
  local flag=-lnt
  [ "$1" = udp ] && flag=-lnu
  for _ in $(seq 100); do
    ss -H $flag "sport = :$2" | grep -q . && return 0
    sleep 0.1
  done
  return 1
}

# coturn_conf <dir> <port> [line...]: writes <dir>/turn.conf, coturn on 127.0.0.1:<port> with
# the benchmarks' user, realm and relay range (10000-29999), plus the given lines (TLS or not).
coturn_conf() {
  local d=$1 p=$2
  shift 2
  mkdir -p "$d"
  printf '%s\n' listening-ip=127.0.0.1 relay-ip=127.0.0.1 "listening-port=$p" min-port=10000 \
    max-port=29999 realm=bench lt-cred-mech user=bench:bench allow-loopback-peers no-cli \
    no-dtls no-multicast-peers "userdb=$d/turndb" "pidfile=$d/turn.pid" \
    "log-file=$d/turn.log" no-stdout-log simple-log "$@" >"$d/turn.conf"
}

# field <line> <key>: the value of key=value in a RESULT/ALLOC line ("" when it has none).
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }

# median "<figures separated by blanks>" [places]: the middle figure, or for an even count the
# mean of the middle two printed with that many decimal places (default 3); nothing for none.
median() {
  tr ' ' '\n' <<<"$1" | grep . | sort -g | awk -v fmt="%.${2:-3}f\n" '{v[NR] = $1}
    END {if (NR % 2) print v[(NR + 1) / 2]; else if (NR) printf fmt, (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
