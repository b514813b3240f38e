# shellcheck shell=bash
# Sourced by instr.sh and threads.sh: a relay phase of full.sh, and its processes.
# relay_procs RUNNER BIN: waits (up to 120 s) until RUNNER's descendants include the load
# generator's rate phase, nats-server and the worker of the anteroom-signal whose command line
# names BIN (the supervisor and its forked worker have the same command line: the worker is the
# supervisor's child), and sets load, nats and worker to their pids; 1 when they did not all
# appear.

# shellcheck disable=SC2013 # children files hold pids separated by spaces
relay_desc() { local p; for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$p"; relay_desc "$p"; done; }

relay_procs() {
  local runner=$1 bin=$2 p cmd c
  worker="" load="" nats=""
  for _ in $(seq 600); do
    sleep 0.2
    for p in $(relay_desc "$runner"); do
      cmd=$({ tr "\0" " " <"/proc/$p/cmdline"; } 2>/dev/null) || continue
      case $cmd in
      *ar_bench_sigload\ rate*) load=$p ;;
      nats-server*) nats=$p ;;
      *"$bin"*--listen*)
        c=$(awk '{print $1}' "/proc/$p/task/$p/children" 2>/dev/null)
        [ -n "$c" ] && worker=$c ;;
      esac
    done
    [ -n "$load" ] && [ -n "$worker" ] && [ -n "$nats" ] && return 0
  done
  return 1
}

# relay_start NAME OUT BIN NODE RATE SECS: full.sh's relay phase (anteroom, one worker, RATE
# msg/s for SECS s) in the background (runner), with NODE as its anteroom-signal (BIN, or a
# wrapper that runs BIN) and its output in OUT; then relay_procs. When the run does not start,
# says so as NAME, shows OUT and exits.
relay_start() {
  local name=$1 out=$2 bin=$3
  SIGNAL_BIN=$4 PHASES=relay SERVERS=anteroom RATES=$5 SECS=$6 bash bench/signal/full.sh >"$out" 2>&1 &
  runner=$!
  relay_procs "$runner" "$bin" && return 0
  echo "$name: the relay run did not start" >&2
  wait "$runner"
  cat "$out" >&2
  exit 1
}
