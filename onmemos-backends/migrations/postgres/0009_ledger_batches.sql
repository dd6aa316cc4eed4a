-- The ledger's rules move from triggers into the batch applier (onmemos_core::ledger::Book,
-- applied by onmemos-backends/src/db/sql/ledger_batch.rs): a batch locks its accounts in id
-- order, computes every operation in memory from the rows it read, and writes the result as a
-- few set-based statements. No global lock: batches of different accounts commit in parallel.
DROP TRIGGER ledger_serialize ON ledger_transfers;
DROP TRIGGER ledger_grant_open ON ledger_transfers;
DROP TRIGGER ledger_grant ON ledger_transfers;
DROP TRIGGER ledger_expire_grant ON ledger_transfers;
DROP TRIGGER ledger_hold_expire ON ledger_transfers;
DROP TRIGGER ledger_hold ON ledger_transfers;
DROP TRIGGER ledger_settle ON ledger_transfers;
DROP FUNCTION ledger_apply(JSONB);
DROP FUNCTION ledger_serialize();
DROP FUNCTION ledger_lock();
DROP FUNCTION ledger_grant_open();
DROP FUNCTION ledger_grant();
DROP FUNCTION ledger_expire_grant();
DROP FUNCTION ledger_hold_expire();
DROP FUNCTION ledger_hold();
DROP FUNCTION ledger_settle();

-- The system accounts every batch credits (revenue, breakage) are striped: each batch adds its
-- movement to one stripe it can lock without waiting (SKIP LOCKED), and an account's counters
-- are its row plus the sum of its stripes. A stripe's counters are partial sums, so they may
-- be negative (a hold credited on one stripe and settled on another).
CREATE TABLE ledger_account_stripes (
    account          TEXT NOT NULL REFERENCES ledger_accounts (id),
    stripe           BIGINT NOT NULL,
    debits_posted    BIGINT NOT NULL DEFAULT 0,
    credits_posted   BIGINT NOT NULL DEFAULT 0,
    debits_pending   BIGINT NOT NULL DEFAULT 0,
    credits_pending  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account, stripe)
);
INSERT INTO ledger_account_stripes (account, stripe)
SELECT a, s FROM (VALUES ('sys:revenue'), ('sys:breakage')) AS v(a), generate_series(0, 15) AS s;
