# Shared by test_up.sh and test_supervisor.sh (source it). The caller sets tmp (its temporary
# directory), up_pid (the anteroom it started, or "") and seen_pids (the daemons it saw printed),
# and may set wait_poll (seconds between tries of wait_for; 0.1 when unset).

# The EXIT trap: kills only the PIDs this script started or saw, then removes tmp.
up_cleanup() {
    [ -n "$up_pid" ] && kill -9 "$up_pid" 2>/dev/null
    for p in "${seen_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}

# wait_for <seconds> <command...>: 0 once the command succeeds, 1 when the time runs out.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while [ "$SECONDS" -lt "$deadline" ]; do
        "$@" && return 0
        sleep "${wait_poll:-0.1}"
    done
    return 1
}
