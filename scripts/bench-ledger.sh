#!/usr/bin/env bash
# Debits per second through the ledger, on SQLite and PostgreSQL, each next to a bare
# guarded-UPDATE loop on the same database in the same run, with 1 and with 64 concurrent callers.
# Usage: scripts/bench-ledger.sh [n] [callers...]
set -euo pipefail
cd "$(dirname "$0")/.."
# A PostgreSQL with its durable defaults (fsync, synchronous commit), as in production.
unset ONMEMOS_TEST_POSTGRES_URL
export PG_DURABLE=1
source scripts/services.sh
services_start
N="${1:-5000}"
shift || true
CALLERS=("$@")
cargo build --quiet --release -p onmemos-backends --all-features --example bench_ledger
BIN=target/release/examples/bench_ledger
dir="$(mktemp -d)"
"$BIN" "sqlite://$dir/bench.db" "$N" "${CALLERS[@]}"
psql -q "$ONMEMOS_TEST_POSTGRES_URL" -c "CREATE DATABASE bench_ledger" >/dev/null
"$BIN" "${ONMEMOS_TEST_POSTGRES_URL%/*}/bench_ledger" "$N" "${CALLERS[@]}"
rm -rf "$dir"
