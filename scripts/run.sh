#!/usr/bin/env bash
# Runs OnMemOS on embedded defaults: SQLite and files under ./onmemos-data, listening on
# 127.0.0.1:8080. On the first run it creates an admin and writes its credentials to
# onmemos-data/credentials.env, then makes a first workspace, `demo`, gives the admin 10
# credits, and starts a first session (template `python`) to open a shell into.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${ONMEMOS_DATA_DIR:-onmemos-data}"
LISTEN="${ONMEMOS_LISTEN:-127.0.0.1:8080}"

# Sessions run in bubblewrap or not at all (local:// fails closed): install it when missing.
if ! command -v bwrap >/dev/null 2>&1; then
  echo "installing bubblewrap (the session sandbox)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  fi
fi

cargo build --release -p onmemos-cli
BIN="$PWD/target/release/onmemos"

"$BIN" serve --data-dir "$DATA" --listen "$LISTEN" --bootstrap-admin admin@localhost &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  curl -sf "http://$LISTEN/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER" 2>/dev/null || { echo "the server exited; see the log above" >&2; exit 1; }
  sleep 0.1
done

if [ ! -f "$DATA/credentials.env" ]; then
  echo "users exist but $DATA/credentials.env is gone: create a key with" >&2
  echo "  $BIN admin create-user --data-dir $DATA --email you@example.com --admin" >&2
  wait "$SERVER"
  exit 0
fi
set -a; . "$DATA/credentials.env"; set +a
"$BIN" workspace get demo >/dev/null 2>&1 || "$BIN" workspace create demo --description "first workspace" >/dev/null
# The id of a JSON object printed by --json, and of the first object of a printed list.
json_id() { sed -n 's/^  "id": "\([^"]*\)".*/\1/p' | head -n1; }
first_id() { sed -n 's/^    "id": "\([^"]*\)".*/\1/p' | head -n1; }
WORKSPACE="$("$BIN" --json workspace get demo | json_id)"
ME="$("$BIN" --json whoami | json_id)"
if "$BIN" --json credits | grep -q '"available": 0,'; then
  "$BIN" credits purchase --user "$ME" --amount 10 >/dev/null
fi
SESSION="$("$BIN" --json session list --workspace "$WORKSPACE" --status running | first_id)"
if [ -z "$SESSION" ]; then
  SESSION="$("$BIN" --json session create --workspace "$WORKSPACE" --template python --idle-timeout 2h | json_id)"
fi

cat <<TXT

OnMemOS is running on http://$LISTEN (Ctrl-C stops it).
Use it from another terminal:

  set -a; . $DATA/credentials.env; set +a
  $BIN shell $SESSION                     # the first session's terminal (/help for built-ins)
  $BIN session exec $SESSION -- uname -a
  $BIN session list
  $BIN estimate --template python --duration 2h
  $BIN whoami
  $BIN workspace list
  $BIN template list
  curl -s http://$LISTEN/openapi.json | head

TXT
wait "$SERVER"
