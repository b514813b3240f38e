#!/usr/bin/env bash
# The seal key and audit anchoring from the operator's side: `anteroom admin` seals what it
# writes under the state directory's secrets/seal-key, `reseal --from-unkeyed` moves a store
# written without a key under it, `audit-head` prints the head and `audit-verify` checks the
# chain against it; anteroom-app starts with --seal-key-file on that store and refuses another
# key (app_seal_key_wrong).
#   admin_secrets.sh <anteroom> <anteroom-app>
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/daemon_lib.sh"
adm=${1:?anteroom}
app=${2:?anteroom-app}
dir=$(mktemp -d /tmp/ar-admin-secrets.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
A() { "$adm" admin --state-dir "$dir" "$@" 2>>"$dir/admin.err"; }

# Written with no seal key (all zero), as before the key existed.
A create-clinic --name One --jurisdiction test >/dev/null
A rotate-turn-secret --secret zero-key-turn-secret-123 >/dev/null
A rotate-keys >/dev/null
mkdir -p "$dir/secrets"
openssl rand -hex 32 >"$dir/secrets/seal-key"
chmod 600 "$dir/secrets/seal-key"
# With the key, the old rows do not open: re-seal them.
out=$(A reseal --from-unkeyed)
echo "$out"
[[ "$out" == "2 secrets sealed under the current seal key" ]] || { cat "$dir/admin.err"; exit 1; }
[[ "$(A reseal --from-unkeyed)" == "0 secrets sealed under the current seal key" ]]
! grep -a -q zero-key-turn-secret-123 "$dir/app.db" || { echo "TURN secret in clear"; exit 1; }
echo "ok reseal"

# Anchoring: record the head, check against it, refuse a wrong record.
head=$(A audit-head)
echo "$head"
read -r -a rec <<<"${head#audit head: }"
A audit-verify "${rec[@]}" | grep -q "holds the recorded head"
A audit-verify | grep -q "audit chain intact: ${rec[1]} entries"
bad=$(printf '%064d' 0)
if A audit-verify --count "${rec[1]}" --hash "$bad"; then echo "a wrong head was accepted"; exit 1; fi
echo "ok audit head recorded and verified"

# The app on this store: the right key serves, another stops the start.
ar_test_servers "$dir/servers.json"
ar_test_cert "$dir"
port=$(free_port)
hport=$(free_port "$port")
run_app() { # call it in a subshell: exec makes the subshell the app (one PID to stop)
  exec "$app" --cert "$dir/cert.pem" --key "$dir/key.pem" --origin "https://127.0.0.1:$port" \
    --listen-port "$port" --health-port "$hport" --store-target "$dir/app.db" \
    --servers "$dir/servers.json" --seal-key-file "$1" --turn-secret zero-key-turn-secret-123
}
openssl rand -hex 32 >"$dir/other-key"
if (run_app "$dir/other-key") >"$dir/wrong.log" 2>&1; then echo "a wrong seal key was accepted"; exit 1; fi
grep -q app_seal_key_wrong "$dir/wrong.log" || { cat "$dir/wrong.log"; exit 1; }
echo "ok wrong seal key refused"
(run_app "$dir/secrets/seal-key") >"$dir/app.log" 2>&1 &
pid=$!
ar_wait_health "$pid" "$hport" || { cat "$dir/app.log"; exit 1; }
curl -sfk "https://127.0.0.1:$port/api/v1/keys" | grep -q '"Ed25519"'
kill -TERM "$pid"
wait "$pid" || { echo "exit status $?"; cat "$dir/app.log"; exit 1; }
pid=""
echo "ok app serves with the seal key file"
