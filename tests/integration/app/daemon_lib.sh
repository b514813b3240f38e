# Shell helpers shared by the scripts that run the app and monitor daemons as operators do
# (tests/integration/app/*.sh, tests/integration/monitor/daemon.sh) and by their benchmarks
# (bench/app/run.sh, bench/monitor/run.sh). Source it; it starts and kills nothing: each
# script keeps and stops its own PIDs.

# A TCP port no socket uses now, other than the ports given: free_port [PORT...]. It lies below
# the kernel's ephemeral range, so no port the kernel hands out by itself (another test's
# outgoing connection, or a bind to port 0) can take it between this check and the daemon's bind;
# the ports given are those picked already and not yet bound (port and health port would
# otherwise come out equal now and then). Another suite's free_port may still take it first:
# scripts that must not flake on that hold RESOURCE_LOCK ports or retry on new ports
# (rapid_reset.sh).
free_port() {
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 11024 ] 2>/dev/null || low=32768
  while :; do
    p=$((10000 + RANDOM % (low - 10000)))
    case " $* " in *" $p "*) continue ;; esac
    ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}

# A self-signed P-256 certificate for 127.0.0.1 (and CN localhost): DIR/cert.pem, DIR/key.pem.
#   ar_test_cert DIR
ar_test_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/key.pem" \
    -out "$1/cert.pem" -subj /CN=localhost -days 2 -addext subjectAltName=IP:127.0.0.1 \
    2>/dev/null
}

# The app's servers file for tests: jurisdiction "test" with one signalling URL and one relay
# on loopback (nothing listens there; tokens only name them). EXTRA, when given, is JSON
# text added after the "test" member of "jurisdictions" (e.g. ', "empty": {}').
#   ar_test_servers FILE [EXTRA]
ar_test_servers() {
  cat >"$1" <<JSON
{"jurisdiction": "test",
 "jurisdictions": {"test": {"signal": ["wss://127.0.0.1:1/ws"],
                            "turn": [{"node": "relay-1", "host": "127.0.0.1", "port": 3478}]}${2:-}}}
JSON
}

# Waits up to 10 s for the operator listener's /healthz on 127.0.0.1:HPORT while PID lives:
# 0 once it answers; 1 when the process exited first or the time ran out.
#   ar_wait_health PID HPORT
ar_wait_health() {
  local _
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Sends SIGTERM to PID (a child of this shell), waits up to 10 s for it to exit and returns
# its exit status.
#   ar_term PID
ar_term() {
  local _ rc=0
  kill -TERM "$1"
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  wait "$1" || rc=$?
  return "$rc"
}

# Stops the given PIDs: SIGTERM, 0.3 s, then SIGKILL to whichever is left (benchmarks' cleanup).
#   ar_kill_all PID...
ar_kill_all() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "$@"; do kill -9 "$p" 2>/dev/null || true; done
}
