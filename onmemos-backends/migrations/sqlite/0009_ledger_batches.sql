-- The ledger's rules move from triggers into the batch applier (onmemos_core::ledger::Book,
-- applied by onmemos-backends/src/db/sql/ledger_batch.rs): a batch computes every operation in
-- memory from the rows it read and writes the result as a few set-based statements, in one
-- transaction of the single writer.
DROP TRIGGER ledger_grant_open;
DROP TRIGGER ledger_grant;
DROP TRIGGER ledger_expire_grant;
DROP TRIGGER ledger_hold_expire;
DROP TRIGGER ledger_hold;
DROP TRIGGER ledger_settle;
DROP TRIGGER ledger_grant_caps;

-- Striped system accounts, as on PostgreSQL; with one writer, one stripe is enough.
CREATE TABLE ledger_account_stripes (
    account          TEXT NOT NULL REFERENCES ledger_accounts (id),
    stripe           INTEGER NOT NULL,
    debits_posted    INTEGER NOT NULL DEFAULT 0,
    credits_posted   INTEGER NOT NULL DEFAULT 0,
    debits_pending   INTEGER NOT NULL DEFAULT 0,
    credits_pending  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, stripe)
) STRICT, WITHOUT ROWID;
INSERT INTO ledger_account_stripes (account, stripe) VALUES ('sys:revenue', 0), ('sys:breakage', 0);
