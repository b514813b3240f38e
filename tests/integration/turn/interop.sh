#!/usr/bin/env bash
# Interop with clients we did not write (issue 2, "Tests in make test").
# Usage: interop.sh <server-binary> binding|udp|tcp|tls|rest|big
#   binding  coturn's turnutils_stunclient and Debian's stun client get Binding answers that carry
#            the client's own address (sent from 127.0.0.2 so it differs from the server's).
#   udp|tcp|tls  turnutils_uclient with a static user relays to turnutils_peer with no loss: over
#            channels, over Send/Data indications, client to client, to an IPv6 peer; tls also
#            checks the certificate served and that only TLS 1.2+ with AEAD suites is spoken.
#            udp also: DONT-FRAGMENT, a client speaking IPv6 to the server, and (anteroom-turn,
#            in the test namespace) a wildcard listener answering from the address each request
#            reached, and relayed packets counted on /metrics with no username or address there.
#   rest     the same over UDP, TCP and TLS with TURN REST credentials from a shared secret.
#   big      payloads over 1280 bytes (once dropped silently from TCP/TLS clients): 1400-byte
#            messages over TCP, TLS and UDP, channels and indications, then 2500-byte (UDP), 4000-
#            and 8000-byte ones (TCP, TLS) whose echoes are UDP datagrams longer than the relay's
#            receive slots; then (on
#            anteroom-turn) a payload over the UDP limit is refused and counted on /metrics.
AR_ARGS=("$@")
. "$(dirname "$0")/lib.sh"
ar_init "${1:-}"
case=${2:-}
ar_require turnutils_uclient turnutils_peer turnutils_stunclient stun timeout curl

USER_FLAGS=(--realm=anteroom.test --user=alice:alice-secret --allow-loopback-peers)
REST_SECRET=interop-rest-secret

peer_start() { # echo peers on 127.0.0.1 and ::1
    turnutils_peer -L 127.0.0.1 -p "$AR_PEER_PORT" >"$AR_WORK/peer.log" 2>&1 &
    AR_BG_PIDS="$AR_BG_PIDS $!"
    turnutils_peer -L ::1 -p "$AR_PEER_PORT" >"$AR_WORK/peer6.log" 2>&1 &
    AR_BG_PIDS="$AR_BG_PIDS $!"
}

# The relay checks for one transport; $@ are the transport flags of uclient. The runs go
# together (ar_uclient_start); the caller checks them with ar_uclient_wait.
relay_checks() {
    local name=$1
    shift
    local common=(-p "$AR_PORT" -u alice -w alice-secret -m 4 -n 30 -l 180 -z 5 -c)
    ar_uclient_start "$name channels, static user" 120 "${common[@]}" "$@" -e 127.0.0.1 -r "$AR_PEER_PORT"
    ar_uclient_start "$name indications, static user" 120 "${common[@]}" "$@" -s -e 127.0.0.1 -r "$AR_PEER_PORT"
    # Client to client only over UDP and TCP: uclient 4.6.1's -y over TLS races its own
    # permissions and loses packets even against coturn.
    if [ "$name" != TLS ]; then
        ar_uclient_start "$name client to client, channels" 120 "${common[@]}" "$@" -y
        ar_uclient_start "$name client to client, indications" 120 "${common[@]}" "$@" -y -s
    fi
    ar_uclient_start "$name 1200-byte messages" 40 "${common[@]}" -l 1200 -m 2 -n 20 "$@" -e 127.0.0.1 -r "$AR_PEER_PORT"
    # RFC 6156: an IPv6 relay (REQUESTED-ADDRESS-FAMILY) to an IPv6 peer.
    ar_uclient_start "$name IPv6 relay, channels" 40 "${common[@]}" -m 2 -n 20 "$@" -x -e ::1 -r "$AR_PEER_PORT"
}

# UDP only: DONT-FRAGMENT, an IPv6 client, and on anteroom-turn in the test namespace a wildcard
# listener (started here on port 3479) that must answer from the address each request reached
# (IP_PKTINFO): uclient's connected socket takes answers only from 127.0.0.2, where it sent.
udp_extra_checks() {
    local common=(-p "$AR_PORT" -u alice -w alice-secret -m 4 -n 30 -l 180 -z 5 -c)
    ar_uclient_start "UDP DONT-FRAGMENT to the peer" 120 "${common[@]}" -g -e 127.0.0.1 -r "$AR_PEER_PORT"
    AR_UC_HOST=::1 ar_uclient_start "UDP client over IPv6, IPv6 relay" 40 "${common[@]}" -m 2 -n 20 -x \
        -e ::1 -r "$AR_PEER_PORT"
    if [ "$AR_KIND" = anteroom ] && [ -n "${AR_IN_SANDBOX:-}" ]; then
        "$AR_SERVER" --listening-ip=0.0.0.0 --listening-port=3479 --relay-ip=127.0.0.1 \
            --min-port=49400 --max-port=49599 "${USER_FLAGS[@]}" >"$AR_WORK/wildcard.log" 2>&1 &
        AR_BG_PIDS="$AR_BG_PIDS $!"
        python3 "$AR_HERE/stun_ping.py" 127.0.0.2 3479 10 || ar_die "the wildcard server did not start"
        AR_UC_HOST=127.0.0.2 ar_uclient_start "wildcard listener answers from 127.0.0.2, where asked" 120 \
            -p 3479 -u alice -w alice-secret -m 4 -n 30 -l 180 -z 5 -c -y
    else
        echo "skip wildcard listener: anteroom-turn in the test namespace only"
    fi
}

# metric_wait <sample pattern>: scrapes anteroom-turn's /metrics (on $AR_METRICS_PORT) into
# $AR_METRICS and the sample's value into $AR_METRIC (empty when absent). Counters are pushed
# about once a second, so it polls for up to 5 s until the value is above 0.
metric_wait() {
    local i
    for ((i = 0; i < 25; i++)); do
        AR_METRICS=$(curl -sf "http://127.0.0.1:$AR_METRICS_PORT/metrics")
        AR_METRIC=$(sed -nE "s/^$1 ([0-9]+)\$/\\1/p" <<<"$AR_METRICS")
        [ "${AR_METRIC:-0}" -gt 0 ] && return
        sleep 0.2
    done
}

# /metrics counts the relayed UDP packets and carries no username or address.
metrics_checks() {
    metric_wait 'anteroom_turn_relayed_packets_total\{transport="udp",direction="in"\}'
    ar_check "metrics count relayed UDP packets (in: ${AR_METRIC:-none})" [ "${AR_METRIC:-0}" -gt 0 ]
    ar_check "no username or address in /metrics" bash -c '! grep -qE "alice|127\.0\.0\.1" <<<"$1"' _ "$AR_METRICS"
}

binding_checks() {
    local out port
    out=$(timeout 10 turnutils_stunclient -p "$AR_PORT" -L "$AR_CLIENT_IP" 127.0.0.1 2>&1)
    if grep -qE "UDP reflexive addr: $AR_CLIENT_IP:[1-9][0-9]*\$" <<<"$out"; then
        ar_pass "turnutils_stunclient gets its own address ($AR_CLIENT_IP) back"
    else
        ar_fail "turnutils_stunclient gets its own address back: $out"
    fi
    out=$(timeout 10 turnutils_stunclient -p "$AR_PORT" ::1 2>&1)
    if grep -qE 'UDP reflexive addr: \[?::1\]?:[1-9][0-9]*$' <<<"$out"; then
        ar_pass "turnutils_stunclient over IPv6 gets [::1] back"
    else
        ar_fail "turnutils_stunclient over IPv6 gets [::1] back: $out"
    fi
    # Debian's stun client speaks RFC 3489 (no magic cookie, a CHANGE-REQUEST asking for no
    # change); test 1 is the plain Binding exchange. -p fixes its source port so the whole mapped
    # address can be checked.
    port=$(ar_free_port)
    out=$(timeout 10 stun "127.0.0.1:$AR_PORT" 1 -v -p "$port" -i "$AR_CLIENT_IP" 2>&1)
    if grep -qE "^MappedAddress = $AR_CLIENT_IP:$port\$" <<<"$out" &&
        grep -q 'Return value is 0x000000' <<<"$out"; then
        ar_pass "stun (stun-client 0.97) gets MappedAddress $AR_CLIENT_IP:$port"
    else
        echo "$out" | tail -15
        ar_fail "stun (stun-client 0.97) gets MappedAddress $AR_CLIENT_IP:$port"
    fi
}

# The TLS listener serves the configured certificate, TLS 1.2 and 1.3 with AEAD suites only.
tls_checks() {
    local want got v out
    want=$(openssl x509 -in "$AR_WORK/cert.pem" -noout -fingerprint -sha256)
    got=$(timeout 10 openssl s_client -connect "127.0.0.1:$AR_TLS_PORT" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null)
    ar_check "TLS listener serves the configured certificate" [ "${got:-none}" = "$want" ]
    for v in tls1_2 tls1_3; do
        out=$(timeout 10 openssl s_client -connect "127.0.0.1:$AR_TLS_PORT" -"$v" </dev/null 2>&1)
        ar_check "$v accepted ($(grep -m1 'Cipher is' <<<"$out"))" \
            grep -qE 'Cipher is (TLS_AES|TLS_CHACHA20|ECDHE-[A-Z]+-(AES[0-9]+-GCM|CHACHA20))' <<<"$out"
    done
    # SECLEVEL=0 so that it is the server, not our own OpenSSL, that must refuse.
    for v in tls1 tls1_1; do
        ar_check "$v refused" bash -c "! timeout 10 openssl s_client -connect 127.0.0.1:$AR_TLS_PORT \
            -$v -cipher DEFAULT@SECLEVEL=0 </dev/null >/dev/null 2>&1"
    done
    ar_check "TLS 1.2 CBC-SHA1 suite refused" bash -c "! timeout 10 openssl s_client \
        -connect 127.0.0.1:$AR_TLS_PORT -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA@SECLEVEL=0 \
        </dev/null >/dev/null 2>&1"
}

# A renewed certificate is served after the reload signal (SIGHUP; coturn uses SIGUSR2), with
# the server still running.
cert_reload_check() {
    local sig=HUP want got i
    [ "$AR_KIND" = coturn ] && sig=USR2
    mv "$AR_WORK/cert.pem" "$AR_WORK/cert.old.pem"
    ar_cert
    want=$(openssl x509 -in "$AR_WORK/cert.pem" -noout -fingerprint -sha256)
    kill -"$sig" "$AR_SERVER_PID"
    for ((i = 0; i < 20; i++)); do # a reload may take a moment to reach every worker
        sleep 0.25
        got=$(timeout 10 openssl s_client -connect "127.0.0.1:$AR_TLS_PORT" </dev/null 2>/dev/null |
            openssl x509 -noout -fingerprint -sha256 2>/dev/null)
        [ "$got" = "$want" ] && break
    done
    ar_check "renewed certificate served after SIG$sig" [ "${got:-none}" = "$want" ]
    ar_check "server still running after SIG$sig" ar_server_alive
}

# Payloads above the old 1280-byte copy limit, both ways (the peer echoes each message back as
# one UDP datagram of the same size).
big_checks() {
    local name=$1
    shift
    local common=(-p "$AR_PORT" -u alice -w alice-secret -m 2 -n 20 -z 5 -c -e 127.0.0.1 -r "$AR_PEER_PORT")
    ar_uclient_start "$name 1400-byte channels" 40 "${common[@]}" -l 1400 "$@"
    ar_uclient_start "$name 1400-byte indications" 40 "${common[@]}" -l 1400 -s "$@"
    # Datagrams longer than the relay's 2 KiB receive slots, and over streams frames longer than
    # a connection's own 4 KiB buffer. One session, not two: turnutils_peer and uclient keep the
    # default socket buffers (a few dozen such datagrams), which a loaded machine can overrun
    # while the relay carried everything, so the bursts are kept small.
    if [ "$name" = UDP ]; then
        ar_uclient_start "$name 2500-byte channels" 20 "${common[@]}" -m 1 -l 2500 "$@"
    else
        ar_uclient_start "$name 4000-byte channels" 40 "${common[@]}" -l 4000 "$@"
        ar_uclient_start "$name 8000-byte indications" 20 "${common[@]}" -m 1 -l 8000 -s "$@"
    fi
}

# anteroom-turn: ChannelData over TCP with 65535 data bytes, over the 65507-byte UDP limit, is
# refused, counted on /metrics (anteroom_turn_oversize_dropped_total) and logged, and the
# connection goes on relaying (turn_probe's bigframe case).
oversize_checks() {
    local port=3490
    [ -n "${AR_IN_SANDBOX:-}" ] || port=$(ar_free_port)
    "$AR_TURN_PROBE" -s "127.0.0.1:$AR_PORT" -u alice -w alice-secret -t -p 127.0.0.1 -P "$port" \
        bigframe >"$AR_WORK/bigframe.log" 2>&1
    ar_check "turn_probe bigframe: 65000 bytes relayed both ways, 65535 refused ($(tail -1 "$AR_WORK/bigframe.log"))" \
        grep -q '^bigframe ok' "$AR_WORK/bigframe.log"
    metric_wait anteroom_turn_oversize_dropped_total
    ar_check "the refused payload is counted (oversize_dropped_total ${AR_METRIC:-none})" [ "${AR_METRIC:-0}" -eq 1 ]
    ar_check "and logged" grep -q '"turn_oversize_dropped"' "$AR_SERVER_LOG"
}

case $case in
    binding)
        ar_server_start "${USER_FLAGS[@]}"
        binding_checks
        ;;
    udp)
        peer_start
        extra=()
        if [ "$AR_KIND" = anteroom ]; then
            # Two workers on SO_REUSEPORT sockets whatever the CPU count, and the metrics listener.
            AR_METRICS_PORT=3481
            [ -n "${AR_IN_SANDBOX:-}" ] || AR_METRICS_PORT=$(ar_free_port)
            extra=(--workers=2 --metrics-listen="127.0.0.1:$AR_METRICS_PORT")
        fi
        ar_server_start "${USER_FLAGS[@]}" "${extra[@]}"
        if [ "$AR_KIND" = anteroom ] && [ -n "${AR_LATE_BIND:-}" ]; then
            ar_check "relay sockets bound at the first permission (AR_LATE_BIND)" \
                grep -q '"bind":"first_permission"' "$AR_SERVER_LOG"
        fi
        relay_checks UDP
        udp_extra_checks
        ar_uclient_wait
        [ "$AR_KIND" = anteroom ] && metrics_checks
        ;;
    tcp)
        peer_start
        ar_server_start "${USER_FLAGS[@]}"
        relay_checks TCP -t
        ar_uclient_wait
        ;;
    tls)
        ar_cert
        peer_start
        ar_server_start "${USER_FLAGS[@]}" --tls-listening-port="$AR_TLS_PORT" \
            --cert="$AR_WORK/cert.pem" --pkey="$AR_WORK/key.pem"
        tls_checks
        cert_reload_check
        relay_checks TLS -t -S -p "$AR_TLS_PORT"
        ar_uclient_wait
        ;;
    big)
        ar_cert
        peer_start
        extra=()
        if [ "$AR_KIND" = anteroom ]; then
            AR_METRICS_PORT=3481
            [ -n "${AR_IN_SANDBOX:-}" ] || AR_METRICS_PORT=$(ar_free_port)
            extra=(--metrics-listen="127.0.0.1:$AR_METRICS_PORT")
        fi
        ar_server_start "${USER_FLAGS[@]}" --tls-listening-port="$AR_TLS_PORT" \
            --cert="$AR_WORK/cert.pem" --pkey="$AR_WORK/key.pem" "${extra[@]}"
        big_checks TCP -t
        big_checks TLS -t -S -p "$AR_TLS_PORT"
        big_checks UDP
        ar_uclient_wait
        [ "$AR_KIND" = anteroom ] && oversize_checks
        ;;
    rest)
        ar_cert
        peer_start
        ar_server_start --realm=anteroom.test --use-auth-secret --static-auth-secret="$REST_SECRET" \
            --allow-loopback-peers --tls-listening-port="$AR_TLS_PORT" \
            --cert="$AR_WORK/cert.pem" --pkey="$AR_WORK/key.pem"
        rest=(-p "$AR_PORT" -u bob -W "$REST_SECRET" -m 2 -n 30 -l 180 -z 5 -c -e 127.0.0.1 -r "$AR_PEER_PORT")
        ar_uclient_start "UDP channels, REST secret" 60 "${rest[@]}"
        ar_uclient_start "UDP indications, REST secret" 60 "${rest[@]}" -s
        ar_uclient_start "UDP client to client, channels, REST secret" 60 "${rest[@]}" -y
        ar_uclient_start "TCP channels, REST secret" 60 "${rest[@]}" -t
        ar_uclient_start "TLS channels, REST secret" 60 "${rest[@]}" -t -S -p "$AR_TLS_PORT"
        # A wrong secret must not relay anything (proves the REST runs above were checked).
        timeout 30 turnutils_uclient -p "$AR_PORT" -u bob -W wrong-secret -m 1 -n 3 -c -e 127.0.0.1 \
            -r "$AR_PEER_PORT" 127.0.0.1 >"$AR_WORK/uclient.wrong.log" 2>&1 &
        wrong=$!
        ar_uclient_wait
        if wait "$wrong"; then
            ar_fail "uclient with a wrong REST secret is refused"
        else
            ar_pass "uclient with a wrong REST secret is refused"
        fi
        ;;
    *) ar_die "unknown case '$case' (binding, udp, tcp, tls, rest, big)" ;;
esac
ar_check "server still running after the clients" ar_server_alive
ar_server_stop
ar_finish
