-- Holds and their reservations are stored in their primary key's order (`WITHOUT ROWID`):
-- each tick of a running session writes a hold and a reservation and settles the previous
-- pair, and a rowid table wrote every such row twice (the row, then its key's index).
-- SQLite cannot change a table's storage in place, and a parent table cannot be dropped while
-- rows refer to it, so both move through temporary copies, child first out, parent first in.
CREATE TEMP TABLE moving_holds AS SELECT * FROM ledger_holds;
CREATE TEMP TABLE moving_allocations AS SELECT * FROM ledger_hold_allocations;
DROP TABLE ledger_hold_allocations;
DROP TABLE ledger_holds;

CREATE TABLE ledger_holds (
    id          TEXT PRIMARY KEY NOT NULL REFERENCES ledger_transfers (id),
    seq         INTEGER NOT NULL,
    user_id     TEXT NOT NULL REFERENCES ledger_accounts (id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    timeout_at  INTEGER NOT NULL,
    pending     INTEGER NOT NULL DEFAULT 1 CHECK (pending IN (0, 1))
) STRICT, WITHOUT ROWID;
CREATE INDEX ledger_holds_due ON ledger_holds (timeout_at) WHERE pending = 1;

CREATE TABLE ledger_hold_allocations (
    hold_id   TEXT NOT NULL REFERENCES ledger_holds (id),
    position  INTEGER NOT NULL,
    grant_id  TEXT NOT NULL REFERENCES ledger_grants (id),
    amount    INTEGER NOT NULL CHECK (amount > 0),
    taken     INTEGER CHECK (taken >= 0),
    PRIMARY KEY (hold_id, position)
) STRICT, WITHOUT ROWID;

INSERT INTO ledger_holds (id, seq, user_id, amount, timeout_at, pending)
    SELECT id, seq, user_id, amount, timeout_at, pending FROM moving_holds;
INSERT INTO ledger_hold_allocations (hold_id, position, grant_id, amount, taken)
    SELECT hold_id, position, grant_id, amount, taken FROM moving_allocations;
DROP TABLE moving_holds;
DROP TABLE moving_allocations;
