# Sourced by test scripts: ar_nats_pair <dir> starts a two-server NATS cluster (Debian's
# nats-server) and sets nats_c1 and nats_c2 (the servers' client ports), appending both PIDs to
# the caller's array pids (stopped by the caller's trap). Each server binds ports of its own
# choosing (-p -1, cluster port -1) and writes them to a ports file; the second server's route
# names the first one's actual cluster port. Picking "free" ports beforehand raced: a port seen
# free could be taken (by any connect() in the namespace, which draws from the same ephemeral
# range) before nats-server bound it, and the cluster never formed. Logs: <dir>/n1.log, n2.log.

# ar__nats_ports <ports file> <key>: the port of the first URL under key ("nats" or "cluster").
ar__nats_ports() {
    grep -oE "\"$2\":\[\"nats://[^\"]*:[0-9]+\"" "$1" 2>/dev/null | grep -oE '[0-9]+"$' | tr -d '"'
}

# ar__nats_start <dir> <n> [route port]: one server; waits (15 s at most) for its ports file.
ar__nats_start() {
    local d=$1/n$2 pid f c r
    mkdir -p "$d"
    nats-server -a 127.0.0.1 -p -1 --cluster_name ar --cluster nats://127.0.0.1:-1 \
        --ports_file_dir "$d" ${3:+--routes "nats://127.0.0.1:$3"} >"$1/n$2.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    f=$d/nats-server_$pid.ports
    for _ in $(seq 150); do
        c=$(ar__nats_ports "$f" nats) r=$(ar__nats_ports "$f" cluster)
        [ -n "$c" ] && [ -n "$r" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$c" ] && [ -n "$r" ] || { cat "$1/n$2.log"; echo "FAIL: nats-server $2 did not start"; return 1; }
    eval "nats_c$2=$c nats_r$2=$r"
}

ar_nats_pair() {
    ar__nats_start "$1" 1 || return 1
    ar__nats_start "$1" 2 "$nats_r1" || return 1
    # Routes retry about once a second: allow a busy machine 30 s.
    for _ in $(seq 300); do
        grep -q "Route connection created" "$1/n1.log" && grep -q "Route connection created" "$1/n2.log" &&
            return 0
        sleep 0.1
    done
    cat "$1"/n1.log "$1"/n2.log
    echo "FAIL: the NATS cluster did not form"
    return 1
}
