-- The ledger's caps (docs/billing.md): a user's posted balance stays at most MAX_BALANCE
-- (10^15 micro-credits), and what the ledger has issued in all at most what an INTEGER holds.
-- Credit only enters through grants and every other counter is bounded by the issuance
-- account's debits, so checking grants keeps every counter's sum exact. A refused grant raises
-- `ledger:balance_cap:<balance>` or `ledger:ledger_full:<issued>` and changes nothing.
-- (The same rules for PostgreSQL are in migrations/postgres/0008_ledger_caps.sql.)
CREATE TRIGGER ledger_grant_caps BEFORE INSERT ON ledger_transfers
WHEN NEW.kind = 'grant'
BEGIN
    SELECT RAISE(ABORT, 'ledger:balance_cap:' || (credits_posted - debits_posted))
    FROM ledger_accounts
    WHERE id = NEW.credit_account
      AND credits_posted - debits_posted > 1000000000000000 - NEW.amount;
    SELECT RAISE(ABORT, 'ledger:ledger_full:' || debits_posted)
    FROM ledger_accounts
    WHERE id = 'sys:issuance' AND debits_posted > 9223372036854775807 - NEW.amount;
END;
