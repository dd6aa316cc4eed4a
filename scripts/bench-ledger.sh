#!/usr/bin/env bash
# Debits per second through the ledger, on SQLite and PostgreSQL, each next to a bare
# guarded-UPDATE loop on the same database in the same run. Usage: scripts/bench-ledger.sh [n]
set -euo pipefail
cd "$(dirname "$0")/.."
# A PostgreSQL with its durable defaults (fsync, synchronous commit), as in production.
unset ONMEMOS_TEST_POSTGRES_URL
export PG_DURABLE=1
source scripts/services.sh
services_start
N="${1:-5000}"
cargo build --quiet --release -p onmemos-backends --all-features --example bench_ledger
BIN=target/release/examples/bench_ledger
dir="$(mktemp -d)"
"$BIN" "sqlite://$dir/bench.db" "$N"
psql -q "$ONMEMOS_TEST_POSTGRES_URL" -c "CREATE DATABASE bench_ledger" >/dev/null
"$BIN" "${ONMEMOS_TEST_POSTGRES_URL%/*}/bench_ledger" "$N"
rm -rf "$dir"
