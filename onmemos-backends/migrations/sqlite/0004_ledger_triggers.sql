-- The ledger's rules, in the schema: an operation is one INSERT of its transfer, and the
-- triggers below apply it to the accounts, grants and holds inside that statement (one
-- statement is one atomic step, so a refused operation changes nothing). Refusals are raised
-- as `ledger:<reason>[:<figure>]`, which the backend maps to the API's errors.
--
-- The same rules in PL/pgSQL are in migrations/postgres/0004_ledger_triggers.sql; the model
-- check in tests/ledger_stress.rs holds both to onmemos_core::ledger::ReferenceLedger.

-- What each allocation of a settled hold paid (NULL while the hold is pending).
ALTER TABLE ledger_hold_allocations ADD COLUMN taken INTEGER CHECK (taken >= 0);

-- A grant: opens the user's account (the user must exist), credits it from issuance.
CREATE TRIGGER ledger_grant_open BEFORE INSERT ON ledger_transfers
WHEN NEW.kind = 'grant'
BEGIN
    SELECT RAISE(ABORT, 'ledger:no_user')
    WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = NEW.credit_account);
    INSERT INTO ledger_accounts (id, kind)
    SELECT NEW.credit_account, 'user'
    WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts WHERE id = NEW.credit_account);
END;

CREATE TRIGGER ledger_grant AFTER INSERT ON ledger_transfers
WHEN NEW.kind = 'grant'
BEGIN
    UPDATE ledger_accounts SET credits_posted = credits_posted + NEW.amount
    WHERE id = NEW.credit_account;
    INSERT INTO ledger_grants (id, seq, user_id, source, priority, amount, expires_at, created_at)
    VALUES (NEW.id, NEW.seq, NEW.credit_account, NEW.source, NEW.priority, NEW.amount,
            NEW.expires_at, NEW.created_at);
    UPDATE ledger_accounts SET debits_posted = debits_posted + NEW.amount
    WHERE id = 'sys:issuance';
END;

-- Credit of a grant moved to breakage: at its expiry, or released by a settlement later.
CREATE TRIGGER ledger_expire_grant AFTER INSERT ON ledger_transfers
WHEN NEW.kind = 'expire_grant'
BEGIN
    UPDATE ledger_grants SET expired = expired + NEW.amount WHERE id = NEW.grant_id;
    UPDATE ledger_accounts SET debits_posted = debits_posted + NEW.amount
    WHERE id = NEW.debit_account;
    UPDATE ledger_accounts SET credits_posted = credits_posted + NEW.amount
    WHERE id = 'sys:breakage';
END;

-- A hold, first: the user's grants whose expiry is due expire before it (so it cannot spend
-- them). Their transfers come before the hold's in ledger order.
CREATE TRIGGER ledger_hold_expire BEFORE INSERT ON ledger_transfers
WHEN NEW.kind = 'hold'
BEGIN
    SELECT RAISE(ABORT, 'ledger:insufficient:0')
    WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts WHERE id = NEW.debit_account);
    INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount, grant_id,
                                  created_at)
    SELECT 'expire:' || id, 'expire_grant', user_id, 'sys:breakage',
           amount - consumed - reserved - expired, id, NEW.created_at
    FROM ledger_grants
    WHERE user_id = NEW.debit_account AND expiry_done = 0 AND expires_at <= NEW.created_at
      AND amount - consumed - reserved - expired > 0
    ORDER BY expires_at, seq;
    UPDATE ledger_grants SET expiry_done = 1
    WHERE user_id = NEW.debit_account AND expiry_done = 0 AND expires_at <= NEW.created_at;
END;

-- Then the guarded debit (the row count decides), and the reservation on the grants in
-- consumption order: priority, soonest expiry (none last), oldest.
CREATE TRIGGER ledger_hold AFTER INSERT ON ledger_transfers
WHEN NEW.kind = 'hold'
BEGIN
    UPDATE ledger_accounts SET debits_pending = debits_pending + NEW.amount
    WHERE id = NEW.debit_account
      AND credits_posted - debits_posted - debits_pending >= NEW.amount;
    SELECT RAISE(ABORT, 'ledger:insufficient:' ||
                 (SELECT credits_posted - debits_posted - debits_pending
                  FROM ledger_accounts WHERE id = NEW.debit_account))
    WHERE changes() = 0;
    INSERT INTO ledger_holds (id, seq, user_id, amount, timeout_at)
    VALUES (NEW.id, NEW.seq, NEW.debit_account, NEW.amount, NEW.expires_at);
    INSERT INTO ledger_hold_allocations (hold_id, position, grant_id, amount)
    SELECT NEW.id, position, id, MIN(free, NEW.amount - before)
    FROM (SELECT id, free, ROW_NUMBER() OVER w - 1 AS position, SUM(free) OVER w - free AS before
          FROM (SELECT id, seq, priority, expires_at,
                       amount - consumed - reserved - expired AS free
                FROM ledger_grants
                WHERE user_id = NEW.debit_account AND amount - consumed - reserved - expired > 0)
          WINDOW w AS (ORDER BY priority, expires_at IS NULL, expires_at, seq
                       ROWS UNBOUNDED PRECEDING))
    WHERE before < NEW.amount;
    UPDATE ledger_grants
    SET reserved = reserved + (SELECT a.amount FROM ledger_hold_allocations a
                               WHERE a.hold_id = NEW.id AND a.grant_id = ledger_grants.id)
    WHERE id IN (SELECT grant_id FROM ledger_hold_allocations WHERE hold_id = NEW.id);
    SELECT RAISE(ABORT, 'ledger:uncovered')
    WHERE (SELECT COALESCE(SUM(amount), 0) FROM ledger_hold_allocations
           WHERE hold_id = NEW.id) <> NEW.amount;
    UPDATE ledger_accounts SET credits_pending = credits_pending + NEW.amount
    WHERE id = 'sys:revenue';
END;

-- A settlement (post, void, or the hold's expiry): flips the hold once, posts the charge and
-- releases the rest, splitting the charge over the allocations in order; released credit of
-- a grant whose expiry was already processed goes to breakage at once.
CREATE TRIGGER ledger_settle AFTER INSERT ON ledger_transfers
WHEN NEW.kind IN ('post', 'void', 'expire_hold')
BEGIN
    UPDATE ledger_holds SET pending = 0 WHERE id = NEW.hold_id AND pending = 1;
    SELECT RAISE(ABORT, 'ledger:settled') WHERE changes() = 0;
    SELECT RAISE(ABORT, 'ledger:timed_out')
    FROM ledger_holds
    WHERE id = NEW.hold_id AND NEW.kind <> 'expire_hold' AND timeout_at <= NEW.created_at;
    SELECT RAISE(ABORT, 'ledger:over_held:' || amount)
    FROM ledger_holds WHERE id = NEW.hold_id AND NEW.kind = 'post' AND NEW.amount > amount;
    UPDATE ledger_accounts
    SET debits_posted = debits_posted + iif(NEW.kind = 'post', NEW.amount, 0),
        debits_pending = debits_pending - (SELECT amount FROM ledger_holds WHERE id = NEW.hold_id)
    WHERE id = NEW.debit_account;
    UPDATE ledger_hold_allocations
    SET taken = MAX(0, MIN(amount, iif(NEW.kind = 'post', NEW.amount, 0) -
                   (SELECT COALESCE(SUM(b.amount), 0) FROM ledger_hold_allocations b
                    WHERE b.hold_id = NEW.hold_id
                      AND b.position < ledger_hold_allocations.position)))
    WHERE hold_id = NEW.hold_id;
    UPDATE ledger_grants
    SET reserved = reserved - (SELECT a.amount FROM ledger_hold_allocations a
                               WHERE a.hold_id = NEW.hold_id AND a.grant_id = ledger_grants.id),
        consumed = consumed + (SELECT a.taken FROM ledger_hold_allocations a
                               WHERE a.hold_id = NEW.hold_id AND a.grant_id = ledger_grants.id)
    WHERE id IN (SELECT grant_id FROM ledger_hold_allocations WHERE hold_id = NEW.hold_id);
    INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount, grant_id,
                                  created_at)
    SELECT 'expire:' || a.grant_id || ':' || NEW.id, 'expire_grant', NEW.debit_account,
           'sys:breakage', a.amount - a.taken, a.grant_id, NEW.created_at
    FROM ledger_hold_allocations a JOIN ledger_grants g ON g.id = a.grant_id
    WHERE a.hold_id = NEW.hold_id AND g.expiry_done = 1 AND a.amount > a.taken
    ORDER BY a.position;
    UPDATE ledger_accounts
    SET credits_posted = credits_posted + iif(NEW.kind = 'post', NEW.amount, 0),
        credits_pending = credits_pending - (SELECT amount FROM ledger_holds WHERE id = NEW.hold_id)
    WHERE id = 'sys:revenue';
END;
