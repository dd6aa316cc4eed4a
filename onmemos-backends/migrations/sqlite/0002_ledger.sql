-- The credit ledger (TigerBeetle's model on SQL). Amounts are integer micro-credits.

-- Accounts: a user account per user with credits, and three system accounts.
-- A user account can never spend more than it was credited, pending holds included.
CREATE TABLE ledger_accounts (
    id               TEXT PRIMARY KEY NOT NULL, -- a user id, or sys:issuance|revenue|breakage
    kind             TEXT NOT NULL CHECK (kind IN ('user', 'issuance', 'revenue', 'breakage')),
    debits_posted    INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted   INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending   INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending  INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    CHECK (kind <> 'user' OR debits_posted + debits_pending <= credits_posted)
) STRICT;
INSERT INTO ledger_accounts (id, kind) VALUES
    ('sys:issuance', 'issuance'), ('sys:revenue', 'revenue'), ('sys:breakage', 'breakage');

-- Transfers: immutable; the id is the idempotency key; seq is the ledger order.
CREATE TABLE ledger_transfers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('grant', 'hold', 'post', 'void', 'expire_hold', 'expire_grant')),
    debit_account   TEXT NOT NULL REFERENCES ledger_accounts (id),
    credit_account  TEXT NOT NULL REFERENCES ledger_accounts (id),
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    hold_id         TEXT,
    grant_id        TEXT,
    expires_at      INTEGER,
    priority        INTEGER,
    source          TEXT CHECK (source IN ('purchase', 'promotion')),
    reference       TEXT,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX ledger_transfers_id ON ledger_transfers (id);
-- At most one settlement (post, void or expiry) per hold.
CREATE UNIQUE INDEX ledger_transfers_settlement ON ledger_transfers (hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account, seq);

-- Grants: what each grant has left. amount = consumed + reserved + expired + free.
CREATE TABLE ledger_grants (
    id          TEXT PRIMARY KEY NOT NULL REFERENCES ledger_transfers (id),
    seq         INTEGER NOT NULL, -- the grant transfer's seq: "oldest" in the consumption order
    user_id     TEXT NOT NULL REFERENCES ledger_accounts (id),
    source      TEXT NOT NULL CHECK (source IN ('purchase', 'promotion')),
    priority    INTEGER NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    consumed    INTEGER NOT NULL DEFAULT 0 CHECK (consumed >= 0),
    reserved    INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    expired     INTEGER NOT NULL DEFAULT 0 CHECK (expired >= 0),
    expires_at  INTEGER,
    expiry_done INTEGER NOT NULL DEFAULT 0 CHECK (expiry_done IN (0, 1)),
    created_at  INTEGER NOT NULL,
    CHECK (consumed + reserved + expired <= amount)
) STRICT;
CREATE INDEX ledger_grants_user ON ledger_grants (user_id, priority, expires_at, seq);
CREATE INDEX ledger_grants_due ON ledger_grants (expires_at) WHERE expiry_done = 0 AND expires_at IS NOT NULL;

-- Holds: pending until settled; and the grants each reserves from.
CREATE TABLE ledger_holds (
    id          TEXT PRIMARY KEY NOT NULL REFERENCES ledger_transfers (id),
    seq         INTEGER NOT NULL,
    user_id     TEXT NOT NULL REFERENCES ledger_accounts (id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    timeout_at  INTEGER NOT NULL,
    pending     INTEGER NOT NULL DEFAULT 1 CHECK (pending IN (0, 1))
) STRICT;
CREATE INDEX ledger_holds_due ON ledger_holds (timeout_at) WHERE pending = 1;

CREATE TABLE ledger_hold_allocations (
    hold_id   TEXT NOT NULL REFERENCES ledger_holds (id),
    position  INTEGER NOT NULL,
    grant_id  TEXT NOT NULL REFERENCES ledger_grants (id),
    amount    INTEGER NOT NULL CHECK (amount > 0),
    PRIMARY KEY (hold_id, position)
) STRICT;
