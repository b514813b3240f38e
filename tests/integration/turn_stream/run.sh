#!/usr/bin/env bash
# Starts anteroom-turn on loopback with TCP and TLS listeners (TLS on tls-listening-port and on
# alt-tls-listening-port) and relays coturn's turnutils_uclient over TCP (-t) and TLS (-t -S)
# through it to turnutils_peer over UDP: channels and Send indications, static user and TURN
# REST secret. Every run must lose no packet. Garbage on the TCP and TLS listeners must close
# only that connection: a client running alongside loses nothing, and the relay still serves
# afterwards. SIGHUP reloads the certificate. Every process started here is stopped by PID on
# exit; each step has a timeout.
# RFC 6062 TCP allocations run client to client (-T) over TCP and TLS.
# Usage: run.sh path/to/anteroom-turn
set -euo pipefail
turn_bin=$1
command -v turnutils_uclient >/dev/null && command -v turnutils_peer >/dev/null || {
  echo "SKIP: coturn's turnutils are not installed (scripts/deps installs them)"
  exit 77
}

port=35780 tls_port=35781 alt_tls_port=35782 peer_port=35800 metrics_port=35790
. "$(dirname "$0")/../turn/lib.sh"
ar_rs_begin

ar_cert

"$turn_bin" --listening-ip 127.0.0.1 --listening-port $port --relay-ip 127.0.0.1 \
  --tls-listening-port $tls_port --alt-tls-listening-port $alt_tls_port \
  --cert "$dir/cert.pem" --pkey "$dir/key.pem" \
  --realm anteroom.test --user alice:wonderland --use-auth-secret \
  --static-auth-secret integration-secret --allow-loopback-peers --workers 2 \
  --min-port 43000 --max-port 43999 --metrics-listen 127.0.0.1:$metrics_port \
  2>"$dir/turn.log" &
pids+=($!)
turn_pid=$!
turnutils_peer -p $peer_port -L 127.0.0.1 >"$dir/peer.log" 2>&1 &
pids+=($!)

for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$metrics_port/healthz" >/dev/null || {
  echo "FAIL: anteroom-turn did not come up"; cat "$dir/turn.log"; exit 1
}

fails=0
# check <name> <output file>: the uclient run sent packets and lost none.
check() {
  local name=$1 out=$2 sent s r
  sent=$(grep -oE 'tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+$' "$out" | tail -1 |
    sed -E 's/tot_send_msgs=([0-9]+), tot_recv_msgs=([0-9]+)/\1 \2/') || true
  read -r s r <<<"${sent:-0 -1}"
  if grep -q 'Total lost packets 0 (' "$out" && [ "$s" -gt 0 ] && [ "$s" -eq "$r" ]; then
    echo "ok   $name: $s sent, $r received, no loss"
  else
    echo "FAIL $name: sent=$s received=$r"; grep -E 'lost|error' "$out" | tail -5
    fails=$((fails + 1))
  fi
}
# turnutils_uclient runs mostly wait (each session starts sending 1 to 6 s after it connects, at
# random), so they start together against the one server and are checked when all are done.
names=() outs=() upids=()
start() { # start <name> <server port> <uclient args...>
  local name=$1 sport=$2; shift 2
  names+=("$name") outs+=("$dir/$name.out")
  timeout 60 turnutils_uclient -p "$sport" -e 127.0.0.1 -r $peer_port -n 100 -l 170 -m 5 \
    -z 5 "$@" 127.0.0.1 >"$dir/$name.out" 2>&1 &
  upids+=($!)
  pids+=($!)
}
collect() { # checks every run started
  local i
  for i in "${!upids[@]}"; do
    if ! wait "${upids[$i]}"; then
      echo "FAIL ${names[$i]}: turnutils_uclient exited with an error"; tail -5 "${outs[$i]}"
      fails=$((fails + 1))
    else
      check "${names[$i]}" "${outs[$i]}"
    fi
  done
  names=() outs=() upids=()
}

# (TCP channels client to client and 1200-byte TCP messages with a static user are
# turn_interop_tcp's.)
start tcp_send_indications_rest $port -t -s -W integration-secret
start tls_channels_static_user $tls_port -t -S -y -u alice -w wonderland
start tls_send_indications_rest $tls_port -t -S -s -W integration-secret
start tls_alt_port_channels $alt_tls_port -t -S -u alice -w wonderland

# Garbage on both stream listeners while TCP and TLS clients relay (those above, and one
# sending longer): only the garbage connections close.
start tcp_client_alongside_garbage $port -t -n 200 -u alice -w wonderland
for i in $(seq 20); do
  head -c 3000 /dev/urandom | timeout 3 bash -c "cat >/dev/tcp/127.0.0.1/$port" 2>/dev/null || true
  printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' |
    timeout 3 bash -c "cat >/dev/tcp/127.0.0.1/$port" 2>/dev/null || true
  head -c 2000 /dev/urandom | timeout 3 bash -c "cat >/dev/tcp/127.0.0.1/$tls_port" 2>/dev/null || true
  # A TLS handshake followed by garbage inside the TLS stream.
  head -c 500 /dev/urandom | timeout 3 openssl s_client -quiet -connect 127.0.0.1:$tls_port \
    >/dev/null 2>&1 || true
done
# A half frame, then silence: closed at the latest by the unallocated-connection timeout, and
# meanwhile harmless.
(printf '\x00\x01\x00\x50\x21\x12\xa4\x42' | timeout 2 bash -c "cat >/dev/tcp/127.0.0.1/$port") \
  2>/dev/null || true
collect
kill -0 "$turn_pid" 2>/dev/null || { echo "FAIL: anteroom-turn died on garbage"; exit 1; }

# Certificate reload on SIGHUP: a new certificate is served to new connections.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=reloaded.test -keyout "$dir/key2.pem" -out "$dir/cert2.pem" >/dev/null 2>&1
mv "$dir/key2.pem" "$dir/key.pem"
mv "$dir/cert2.pem" "$dir/cert.pem"
kill -HUP "$turn_pid"
for _ in $(seq 40); do # the reload reaches every worker within moments: poll, up to 10 s
  subject=$(timeout 5 openssl s_client -connect 127.0.0.1:$tls_port </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null || true)
  echo "$subject" | grep -q reloaded.test && break
  sleep 0.25
done
if echo "$subject" | grep -q reloaded.test; then
  echo "ok   certificate reloaded on SIGHUP"
else
  echo "FAIL certificate reload: served '$subject'"; fails=$((fails + 1))
fi
start tls_after_reload $tls_port -t -S -y -u alice -w wonderland
collect
# RFC 6062 TCP allocations, client to client (-T): Connect from one relay endpoint to the other,
# ConnectionAttempt there, ConnectionBind on new data connections on both sides, raw relaying.
# (Not 1200-byte messages: turnutils_uclient -T loses the odd one of those against coturn 4.6.1
# itself, as it counts messages it reads back from a raw byte stream.) These run one at a time,
# as before: beside other runs on a busy machine (the ASan build especially), uclient -T lost
# the odd message the same way, and -T -S had data connections offering a TLS version the
# server rightly refuses ("tlsv1 alert protocol version").
for run in "tcp_relay_rfc6062 $port -T -u alice -w wonderland" \
  "tcp_relay_rfc6062_rest $port -T -W integration-secret" \
  "tcp_relay_rfc6062_over_tls $tls_port -T -S -u alice -w wonderland"; do
  # shellcheck disable=SC2086
  start $run
  collect
done

# Metrics are pushed once a second: poll until the count is 0, for up to 5 s.
for _ in $(seq 25); do
  metrics=$(curl -sf "http://127.0.0.1:$metrics_port/metrics")
  allocs=$(echo "$metrics" | grep -E '^anteroom_turn_allocations\{' | awk '{s += $2} END {print s + 0}')
  [ "$allocs" -eq 0 ] && break
  sleep 0.2
done
if [ "$allocs" -eq 0 ]; then
  echo "ok   allocations of closed connections are gone"
else
  echo "FAIL $allocs allocations left after every client closed"; fails=$((fails + 1))
fi

kill -TERM "$turn_pid"
for _ in $(seq 50); do kill -0 "$turn_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$turn_pid" 2>/dev/null; then
  echo "FAIL: anteroom-turn did not stop on SIGTERM"; fails=$((fails + 1))
else
  wait "$turn_pid" && echo "ok   clean stop on SIGTERM" || {
    echo "FAIL: anteroom-turn exited with an error on SIGTERM"; fails=$((fails + 1)); }
fi
[ "$fails" -eq 0 ] || { tail -20 "$dir/turn.log"; exit 1; }
