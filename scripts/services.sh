# Real services for the test suite, started on free loopback ports and stopped on exit.
# Sourced by scripts/test.sh; each service exports the URL the tests read.
#
# The suite needs no external service yet: SQLite and the local filesystem are in-process.
# Later backends add their servers here (PostgreSQL, moto, Azurite, fake-gcs-server).

SERVICES_DIR="${SERVICES_DIR:-$PWD/.services}"
SERVICE_PIDS=()

services_stop() {
  local pid
  for pid in "${SERVICE_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVICE_PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

services_start() {
  mkdir -p "$SERVICES_DIR"
  trap services_stop EXIT
}
