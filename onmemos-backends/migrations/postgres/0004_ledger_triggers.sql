-- The ledger's rules, in the schema: an operation is one INSERT of its transfer, and the
-- triggers below apply it to the accounts, grants and holds inside that statement (one
-- statement, one round trip; a refused operation changes nothing). Refusals are raised as
-- `ledger:<reason>[:<figure>]`, which the backend maps to the API's errors.
--
-- The same rules for SQLite are in migrations/sqlite/0004_ledger_triggers.sql; the model check
-- in tests/ledger_stress.rs holds both to onmemos_core::ledger::ReferenceLedger.
--
-- Locks are taken in one order: the ledger's advisory lock (ledger_lock), the transfer's id
-- (and a settlement's hold) in the unique indexes, the hold, the user account, its grants, then
-- the system accounts.

-- Ledger writes are serialized database-wide, as SQLite's single writer does: each takes this
-- transaction-scoped advisory lock before any row lock. Without it, two replicas' batches, each
-- holding some users' accounts and wanting the shared system accounts (or the reverse), deadlock
-- and wait out deadlock_timeout. Batching, not parallel writers, is what gives throughput.
CREATE FUNCTION ledger_lock() RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(4242424242)
$$;

CREATE FUNCTION ledger_serialize() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_lock();
    RETURN NULL;
END $$;

-- What each allocation of a settled hold paid (NULL while the hold is pending).
ALTER TABLE ledger_hold_allocations ADD COLUMN taken BIGINT CHECK (taken >= 0);

-- A grant: opens the user's account (the user must exist), credits it from issuance.
CREATE FUNCTION ledger_grant_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM users WHERE id = NEW.credit_account;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger:no_user';
    END IF;
    INSERT INTO ledger_accounts (id, kind) VALUES (NEW.credit_account, 'user')
    ON CONFLICT (id) DO NOTHING;
    RETURN NEW;
END $$;

CREATE FUNCTION ledger_grant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ledger_accounts SET credits_posted = credits_posted + NEW.amount
    WHERE id = NEW.credit_account;
    INSERT INTO ledger_grants (id, seq, user_id, source, priority, amount, expires_at, created_at)
    VALUES (NEW.id, NEW.seq, NEW.credit_account, NEW.source, NEW.priority, NEW.amount,
            NEW.expires_at, NEW.created_at);
    UPDATE ledger_accounts SET debits_posted = debits_posted + NEW.amount
    WHERE id = 'sys:issuance';
    RETURN NULL;
END $$;

-- Credit of a grant moved to breakage: at its expiry, or released by a settlement later.
CREATE FUNCTION ledger_expire_grant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ledger_grants SET expired = expired + NEW.amount WHERE id = NEW.grant_id;
    UPDATE ledger_accounts SET debits_posted = debits_posted + NEW.amount
    WHERE id = NEW.debit_account;
    UPDATE ledger_accounts SET credits_posted = credits_posted + NEW.amount
    WHERE id = 'sys:breakage';
    RETURN NULL;
END $$;

-- A hold, first: lock the account and, when the user has grants whose expiry is due, expire
-- them (so the hold cannot spend them). Their transfers come before the hold's in ledger order.
CREATE FUNCTION ledger_hold_expire() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The account first, so expiry, the guard and the allocation all see the same grants.
    PERFORM 1 FROM ledger_accounts WHERE id = NEW.debit_account FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger:insufficient:0';
    END IF;
    PERFORM 1 FROM ledger_grants
    WHERE user_id = NEW.debit_account AND expiry_done = 0 AND expires_at <= NEW.created_at;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount, grant_id,
                                  created_at)
    SELECT 'expire:' || id, 'expire_grant', user_id, 'sys:breakage',
           amount - consumed - reserved - expired, id, NEW.created_at
    FROM ledger_grants
    WHERE user_id = NEW.debit_account AND expiry_done = 0 AND expires_at <= NEW.created_at
      AND amount - consumed - reserved - expired > 0
    ORDER BY expires_at, seq;
    IF FOUND THEN
        NEW.seq := nextval(pg_get_serial_sequence('ledger_transfers', 'seq'));
    END IF;
    UPDATE ledger_grants SET expiry_done = 1
    WHERE user_id = NEW.debit_account AND expiry_done = 0 AND expires_at <= NEW.created_at;
    RETURN NEW;
END $$;

-- Then the guarded debit (the row count decides), and the reservation on the grants in
-- consumption order: priority, soonest expiry (none last), oldest. When the first grant covers
-- the whole hold (the common case) one UPDATE reserves it; else a window function splits it.
CREATE FUNCTION ledger_hold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    available BIGINT;
    covered BIGINT;
    first_grant TEXT;
BEGIN
    UPDATE ledger_accounts SET debits_pending = debits_pending + NEW.amount
    WHERE id = NEW.debit_account
      AND credits_posted - debits_posted - debits_pending >= NEW.amount;
    IF NOT FOUND THEN
        SELECT credits_posted - debits_posted - debits_pending INTO available
        FROM ledger_accounts WHERE id = NEW.debit_account;
        RAISE EXCEPTION 'ledger:insufficient:%', COALESCE(available, 0);
    END IF;
    INSERT INTO ledger_holds (id, seq, user_id, amount, timeout_at)
    VALUES (NEW.id, NEW.seq, NEW.debit_account, NEW.amount, NEW.expires_at);
    UPDATE ledger_grants SET reserved = reserved + NEW.amount
    WHERE id = (SELECT id FROM ledger_grants
                WHERE user_id = NEW.debit_account AND amount - consumed - reserved - expired > 0
                ORDER BY priority, expires_at IS NULL, expires_at, seq LIMIT 1)
      AND amount - consumed - reserved - expired >= NEW.amount
    RETURNING id INTO first_grant;
    IF FOUND THEN
        INSERT INTO ledger_hold_allocations (hold_id, position, grant_id, amount)
        VALUES (NEW.id, 0, first_grant, NEW.amount);
    ELSE
        WITH allocated AS (
            INSERT INTO ledger_hold_allocations (hold_id, position, grant_id, amount)
            SELECT NEW.id, position, id, LEAST(free, NEW.amount - before)
            FROM (SELECT id, free, ROW_NUMBER() OVER w - 1 AS position,
                         SUM(free) OVER w - free AS before
                  FROM (SELECT id, seq, priority, expires_at,
                               amount - consumed - reserved - expired AS free
                        FROM ledger_grants
                        WHERE user_id = NEW.debit_account
                          AND amount - consumed - reserved - expired > 0) g
                  WINDOW w AS (ORDER BY priority, expires_at IS NULL, expires_at, seq
                               ROWS UNBOUNDED PRECEDING)) ordered
            WHERE before < NEW.amount
            RETURNING grant_id, amount
        ), reservations AS (
            UPDATE ledger_grants g SET reserved = g.reserved + a.amount
            FROM allocated a WHERE g.id = a.grant_id
            RETURNING a.amount
        )
        SELECT COALESCE(SUM(amount), 0) INTO covered FROM reservations;
        IF covered <> NEW.amount THEN
            RAISE EXCEPTION 'ledger:uncovered';
        END IF;
    END IF;
    UPDATE ledger_accounts SET credits_pending = credits_pending + NEW.amount
    WHERE id = 'sys:revenue';
    RETURN NULL;
END $$;

-- A settlement (post, void, or the hold's expiry): flips the hold once, posts the charge and
-- releases the rest, splitting the charge over the allocations in order; released credit of
-- a grant whose expiry was already processed goes to breakage at once.
CREATE FUNCTION ledger_settle() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    settled ledger_holds%ROWTYPE;
    charge BIGINT := CASE WHEN NEW.kind = 'post' THEN NEW.amount ELSE 0 END;
BEGIN
    UPDATE ledger_holds SET pending = 0 WHERE id = NEW.hold_id AND pending = 1
    RETURNING * INTO settled;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger:settled';
    END IF;
    IF NEW.kind <> 'expire_hold' AND settled.timeout_at <= NEW.created_at THEN
        RAISE EXCEPTION 'ledger:timed_out';
    END IF;
    IF charge > settled.amount THEN
        RAISE EXCEPTION 'ledger:over_held:%', settled.amount;
    END IF;
    UPDATE ledger_accounts
    SET debits_posted = debits_posted + charge, debits_pending = debits_pending - settled.amount
    WHERE id = NEW.debit_account;
    UPDATE ledger_hold_allocations a
    SET taken = GREATEST(0, LEAST(a.amount, charge - o.before))
    FROM (SELECT position, SUM(amount) OVER (ORDER BY position) - amount AS before
          FROM ledger_hold_allocations WHERE hold_id = NEW.hold_id) o
    WHERE a.hold_id = NEW.hold_id AND a.position = o.position;
    UPDATE ledger_grants g
    SET reserved = g.reserved - a.amount, consumed = g.consumed + a.taken
    FROM ledger_hold_allocations a
    WHERE a.hold_id = NEW.hold_id AND g.id = a.grant_id;
    INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount, grant_id,
                                  created_at)
    SELECT 'expire:' || a.grant_id || ':' || NEW.id, 'expire_grant', NEW.debit_account,
           'sys:breakage', a.amount - a.taken, a.grant_id, NEW.created_at
    FROM ledger_hold_allocations a JOIN ledger_grants g ON g.id = a.grant_id
    WHERE a.hold_id = NEW.hold_id AND g.expiry_done = 1 AND a.amount > a.taken
    ORDER BY a.position;
    UPDATE ledger_accounts
    SET credits_posted = credits_posted + charge, credits_pending = credits_pending - settled.amount
    WHERE id = 'sys:revenue';
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_serialize BEFORE INSERT ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_serialize();
CREATE TRIGGER ledger_grant_open BEFORE INSERT ON ledger_transfers
    FOR EACH ROW WHEN (NEW.kind = 'grant') EXECUTE FUNCTION ledger_grant_open();
CREATE TRIGGER ledger_grant AFTER INSERT ON ledger_transfers
    FOR EACH ROW WHEN (NEW.kind = 'grant') EXECUTE FUNCTION ledger_grant();
CREATE TRIGGER ledger_expire_grant AFTER INSERT ON ledger_transfers
    FOR EACH ROW WHEN (NEW.kind = 'expire_grant') EXECUTE FUNCTION ledger_expire_grant();
CREATE TRIGGER ledger_hold_expire BEFORE INSERT ON ledger_transfers
    FOR EACH ROW WHEN (NEW.kind = 'hold') EXECUTE FUNCTION ledger_hold_expire();
CREATE TRIGGER ledger_hold AFTER INSERT ON ledger_transfers
    FOR EACH ROW WHEN (NEW.kind = 'hold') EXECUTE FUNCTION ledger_hold();
CREATE TRIGGER ledger_settle AFTER INSERT ON ledger_transfers
    FOR EACH ROW WHEN (NEW.kind IN ('post', 'void', 'expire_hold'))
    EXECUTE FUNCTION ledger_settle();

-- A batch of operations in one call (group commit): `ops` is a JSON array of transfers as the
-- backend sends them (settlements give `hold_id`, and `amount` for a post). Each operation runs
-- in its own exception block, so a refused one changes nothing and the others go on; one row
-- per operation comes back: the stored transfer, or the SQLSTATE and message it was refused
-- with, or all NULL when the hold to settle does not exist.
CREATE FUNCTION ledger_apply(ops JSONB)
RETURNS TABLE (ord BIGINT, state TEXT, message TEXT, seq BIGINT, id TEXT, kind TEXT,
               debit_account TEXT, credit_account TEXT, amount BIGINT, hold_id TEXT,
               grant_id TEXT, expires_at BIGINT, priority BIGINT, source TEXT,
               reference TEXT, created_at BIGINT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    op RECORD;
    t ledger_transfers%ROWTYPE;
BEGIN
    -- Before any operation's row locks (see ledger_lock).
    PERFORM ledger_lock();
    FOR op IN
        SELECT * FROM ROWS FROM (jsonb_to_recordset(ops)
            AS (id TEXT, kind TEXT, debit_account TEXT, credit_account TEXT, amount BIGINT,
                hold_id TEXT, expires_at BIGINT, priority BIGINT, source TEXT,
                reference TEXT, created_at BIGINT)) WITH ORDINALITY
            AS x(id, kind, debit_account, credit_account, amount, hold_id, expires_at,
                 priority, source, reference, created_at, n)
    LOOP
        ord := op.n;
        state := NULL;
        message := NULL;
        t := NULL;
        BEGIN
            IF op.kind IN ('post', 'void', 'expire_hold') THEN
                INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount,
                                              hold_id, created_at)
                SELECT op.id, op.kind, h.user_id, 'sys:revenue', COALESCE(op.amount, h.amount),
                       h.id, op.created_at
                FROM ledger_holds h WHERE h.id = op.hold_id
                RETURNING * INTO t;
            ELSE
                INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount,
                                              expires_at, priority, source, reference,
                                              created_at)
                VALUES (op.id, op.kind, op.debit_account, op.credit_account, op.amount,
                        op.expires_at, op.priority, op.source, op.reference, op.created_at)
                RETURNING * INTO t;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            state := SQLSTATE;
            message := SQLERRM;
        END;
        seq := t.seq;
        id := t.id;
        kind := t.kind;
        debit_account := t.debit_account;
        credit_account := t.credit_account;
        amount := t.amount;
        hold_id := t.hold_id;
        grant_id := t.grant_id;
        expires_at := t.expires_at;
        priority := t.priority;
        source := t.source;
        reference := t.reference;
        created_at := t.created_at;
        RETURN NEXT;
    END LOOP;
END $$;
