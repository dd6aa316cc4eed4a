#!/usr/bin/env bash
# The API as outsiders see it, against a real `onmemos serve`:
#
# 1. schemathesis over the served /openapi.json, with a member's key and with an admin's key:
#    every check but the exclusions below, a fixed seed, bounded in time. Any failure fails.
# 2. A client generated from the same document by openapi-python-client drives a scenario:
#    workspace, funded session, exec, upload and download, events, stop.
#
# Uses $ONMEMOS_BIN, else target/debug/onmemos (built by the caller). The tools are installed,
# pinned, into the shared tools cache (scripts/services.sh) the first time.
#
# ONMEMOS_API_EXAMPLES (default 12) and ONMEMOS_API_MAX_TIME (seconds per key, default 120)
# trade depth for time; ONMEMOS_API_SEED (default 1) replays another run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
trap services_stop EXIT

target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${ONMEMOS_BIN:-$target/debug/onmemos}"
tools="$TOOLS_DIR/apitools"
if [ ! -x "$tools/bin/schemathesis" ] || [ ! -x "$tools/bin/openapi-python-client" ]; then
  echo "api tools: installing schemathesis and openapi-python-client into $tools"
  mkdir -p "$TOOLS_DIR"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --upgrade pip
  "$tools/bin/pip" install -q 'schemathesis==4.32.5' 'openapi-python-client==0.29.1'
fi

# The server: embedded defaults in a fresh directory, a first admin, no per-key rate limit
# (schemathesis sends hundreds of requests a second from one key; the limiter has its own
# tests in onmemos-server/tests/security.rs).
data="$SERVICES_DIR/api"
mkdir -p "$data"
port="$(free_port)"
url="http://127.0.0.1:$port"
ONMEMOS_SERVER__RATE_LIMIT_PER_SECOND=0 \
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data/server" \
  --bootstrap-admin admin@api.test >"$data/server.log" 2>&1 &
SERVICE_PIDS+=("$!")
for _ in $(seq 1 100); do
  curl -sf "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$url/healthz" >/dev/null || { cat "$data/server.log" >&2; exit 1; }
admin_key="$(sed -n 's/^ONMEMOS_API_KEY=//p' "$data/server/credentials.env")"

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
member="$(curl -sf -X POST "$url/v1/users" -H "Authorization: Bearer $admin_key" \
  -H 'content-type: application/json' -d '{"email": "member@api.test"}')"
member_key="$(printf '%s' "$member" | json_field "['api_key']['secret']")"
member_id="$(printf '%s' "$member" | json_field "['user']['id']")"
# Each run gets keys of its own: schemathesis revokes the keys it finds (its own included).
new_key() {
  curl -sf -X POST "$url/v1/api-keys" -H "Authorization: Bearer $1" \
    -H 'content-type: application/json' -d "{\"name\": \"$2\"}" | json_field "['secret']"
}
scenario_key="$(new_key "$member_key" scenario)"
fuzz_admin_key="$(new_key "$admin_key" schemathesis)"
revoke_member_key="$(new_key "$member_key" revoker)"
revoke_admin_key="$(new_key "$admin_key" revoker)"

# Checks: all of them, but
# - positive_data_acceptance ("a schema-valid request must be accepted"): some rules depend on
#   state or time and no schema can state them — an `expires_at` in the future, a cursor this
#   very list returned, an Idempotency-Key not used before with another body, a template's
#   limits within the server's configured maximum, a template or resources to estimate, a part
#   number the upload has. The server answers those with a 4xx naming the field, which the
#   document declares; every rule a schema *can* state is in the document, and the opposite
#   check (negative_data_rejection: nothing the schema forbids is accepted) runs.
# Security parameters are not generated: each run sends its own key, and a request carrying
# two credentials is refused by design (docs/security.md).
examples="${ONMEMOS_API_EXAMPLES:-12}"
max_time="${ONMEMOS_API_MAX_TIME:-120}"
seed="${ONMEMOS_API_SEED:-1}"
# Revoking keys runs on its own, last: in the main run it would revoke the run's own key
# halfway and leave the rest of the run to 401s.
st() {
  local who="$1" key="$2"
  shift 2
  echo "--- schemathesis as the $who $* (seed $seed, $examples examples, at most ${max_time}s)"
  "$tools/bin/schemathesis" --config-file scripts/schemathesis.toml run "$url/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all --exclude-checks positive_data_acceptance \
    --generation-with-security-parameters false \
    --max-examples "$examples" --max-time "$max_time" --seed "$seed" \
    --request-timeout 20 --no-color "$@"
}
st member "$member_key" --exclude-operation-id revoke_key
st admin "$fuzz_admin_key" --exclude-operation-id revoke_key
st member "$revoke_member_key" --include-operation-id revoke_key
st admin "$revoke_admin_key" --include-operation-id revoke_key

# Credits for the generated client's session.
curl -sf -X POST "$url/v1/credits/grants" -H "Authorization: Bearer $admin_key" \
  -H 'content-type: application/json' \
  -d "{\"user_id\": \"$member_id\", \"amount_micros\": 5000000}" >/dev/null

echo "--- a client generated by openapi-python-client"
gen="$data/generated"
rm -rf "$gen" && mkdir -p "$gen"
curl -sf "$url/openapi.json" >"$gen/openapi.json"
(cd "$gen" && "$tools/bin/openapi-python-client" generate --path openapi.json \
  --meta setup --output-path onmemos-generated >"$gen/generate.log" 2>&1) ||
  { cat "$gen/generate.log" >&2; exit 1; }
# Every schema must make it into the client. The one warning allowed: the generator cannot
# type a streamed NDJSON answer (exec/stream); everything else it could not model fails here.
python3 - "$gen/generate.log" <<'PY'
import re, sys
log = open(sys.argv[1]).read()
blocks = re.split(r"\n(?=WARNING )", log)
bad = [b for b in blocks[1:] if "Unsupported content_type application/x-ndjson" not in b]
if bad:
    print(log, file=sys.stderr)
    sys.exit("openapi-python-client dropped part of the document")
PY
"$tools/bin/pip" install -q "$gen/onmemos-generated"
ONMEMOS_URL="$url" ONMEMOS_API_KEY="$scenario_key" \
  "$tools/bin/python" scripts/generated_client_scenario.py
