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

services_start() {
  mkdir -p "$SERVICES_DIR"
  trap services_stop EXIT
  start_postgres
}
