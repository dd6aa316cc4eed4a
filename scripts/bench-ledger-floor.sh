#!/usr/bin/env bash
# Where a ledger hold's time goes on PostgreSQL, statement by statement, with pgbench: commits
# are free here (fsync off), so only the work of each variant counts. Prints the average
# latency of a bare guarded UPDATE, a full hold, the hold's INSERT with no trigger, and a
# stripped hold (transfer, guard, hold row, grant; no foreign keys, no allocation row, no
# system account, no expiry check), the least a hold can write.
# Usage: scripts/bench-ledger-floor.sh [transactions]
set -euo pipefail
cd "$(dirname "$0")/.."
unset ONMEMOS_TEST_POSTGRES_URL PG_DURABLE
source scripts/services.sh
services_start
T="${1:-3000}"
PGBENCH="$(ls /usr/lib/postgresql/*/bin/pgbench | head -1)"
cargo build --quiet --release -p onmemos-backends --all-features --example bench_ledger
url() { echo "${ONMEMOS_TEST_POSTGRES_URL%/*}/$1"; }
work="$(mktemp -d)"
trap 'rm -rf "$work"; services_stop' EXIT
# A migrated database with one user holding credit, and the baseline's table.
fresh() {
    psql -q "$ONMEMOS_TEST_POSTGRES_URL" -c "CREATE DATABASE $1"
    target/release/examples/bench_ledger "$(url "$1")" 1 1 >/dev/null
    psql -q "$(url "$1")" -c "CREATE TABLE b (id INT PRIMARY KEY, credits BIGINT, debits BIGINT);
        INSERT INTO b VALUES (1, 1000000000000, 0)"
    local user
    user="$(psql -qtA "$(url "$1")" -c "SELECT id FROM users LIMIT 1")"
    # pgbench reads `:name` as a variable: spell the colon of sys:revenue with chr(58).
    echo "INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount,
        expires_at, created_at) VALUES (gen_random_uuid()::text, 'hold', '$user',
        'sys' || chr(58) || 'revenue', 7, 99999999999999, 1);" | tr '\n' ' ' >"$work/hold.sql"
}
latency() {
    "$PGBENCH" -n -M prepared -t "$T" -f "$2" "$(url "$1")" 2>&1 |
        sed -n 's/latency average = //p'
}
echo "UPDATE b SET debits = debits + 7 WHERE id = 1 AND credits - debits >= 7;" >"$work/bare.sql"

fresh floor_full
echo "bare guarded UPDATE:          $(latency floor_full "$work/bare.sql")"
echo "ledger hold:                  $(latency floor_full "$work/hold.sql")"

fresh floor_insert
psql -q "$(url floor_insert)" -c "ALTER TABLE ledger_transfers DISABLE TRIGGER USER"
echo "its INSERT, no trigger:       $(latency floor_insert "$work/hold.sql")"

fresh floor_stripped
psql -q "$(url floor_stripped)" <<'SQL'
DO $$ DECLARE r RECORD; BEGIN
    FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint
             WHERE contype = 'f' AND conrelid::regclass::text LIKE 'ledger_%' LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
    END LOOP;
END $$;
ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_hold_expire;
CREATE OR REPLACE FUNCTION ledger_hold() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    UPDATE ledger_accounts SET debits_pending = debits_pending + NEW.amount
    WHERE id = NEW.debit_account
      AND credits_posted - debits_posted - debits_pending >= NEW.amount;
    INSERT INTO ledger_holds (id, seq, user_id, amount, timeout_at)
    VALUES (NEW.id, NEW.seq, NEW.debit_account, NEW.amount, NEW.expires_at);
    UPDATE ledger_grants SET reserved = reserved + NEW.amount WHERE user_id = NEW.debit_account;
    RETURN NULL;
END $f$;
SQL
echo "stripped hold (the floor):    $(latency floor_stripped "$work/hold.sql")"
