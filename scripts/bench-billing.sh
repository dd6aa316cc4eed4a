#!/usr/bin/env bash
# Session-ticks per second: running sessions billed by 1, 2 and 4 monitor replicas (processes)
# on PostgreSQL (durable commits) and SQLite, each next to a bare batched UPDATE of as many rows
# per statement in the same run.
# Usage: scripts/bench-billing.sh [sessions...]   (default: 10000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
# A PostgreSQL with its durable defaults (fsync, synchronous commit), as in production.
unset ONMEMOS_TEST_POSTGRES_URL
export PG_DURABLE=1
source scripts/services.sh
start_postgres
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
TICKS="${TICKS:-3}"
cargo build --quiet --release -p onmemos-backends --features testing,sqlite,postgres,local-storage \
  --bin onmemos-billing-replica --example bench_billing
BIN=target/release/examples/bench_billing
dir="$(mktemp -d)"
# start_postgres sets no trap: PostgreSQL is stopped here, with the temporary directory.
trap 'rm -rf "$dir"; services_stop' EXIT
for n in "${SIZES[@]}"; do
  psql -q "$ONMEMOS_TEST_POSTGRES_URL" -c "CREATE DATABASE bench_billing_${n}_$$" >/dev/null
  "$BIN" "${ONMEMOS_TEST_POSTGRES_URL%/*}/bench_billing_${n}_$$" "$n" "$TICKS" 1 2 4
  # Dropped before the next run: autovacuum would otherwise work through its dead rows while
  # the next one measures.
  psql -q "$ONMEMOS_TEST_POSTGRES_URL" -c "DROP DATABASE bench_billing_${n}_$$" >/dev/null
  "$BIN" "sqlite://$dir/bench_$n.db" "$n" "$TICKS" 1
done
# The embedded defaults in full: SQLite with local storage, one session per workspace, each
# holding 20 files, so every tick checks its workspace's quota (a walk of its directory).
n="${SIZES[0]}"
BENCH_SESSIONS_PER_OWNER=1 ONMEMOS_BILLING_STORAGE="file://$dir/storage" \
  "$BIN" "sqlite://$dir/bench_storage_$n.db" "$n" "$TICKS" 1
