-- The ledger's caps (docs/billing.md): a user's posted balance stays at most MAX_BALANCE
-- (10^15 micro-credits), and what the ledger has issued in all at most what a BIGINT holds.
-- Credit only enters through grants and every other counter is bounded by the issuance
-- account's debits, so checking grants keeps every counter's sum exact. A refused grant raises
-- `ledger:balance_cap:<balance>` or `ledger:ledger_full:<issued>` and changes nothing.
CREATE OR REPLACE FUNCTION ledger_grant_open() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    held BIGINT;
    issued BIGINT;
BEGIN
    PERFORM 1 FROM users WHERE id = NEW.credit_account;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger:no_user';
    END IF;
    INSERT INTO ledger_accounts (id, kind) VALUES (NEW.credit_account, 'user')
    ON CONFLICT (id) DO NOTHING;
    SELECT credits_posted - debits_posted INTO held
    FROM ledger_accounts WHERE id = NEW.credit_account;
    IF held > 1000000000000000 - NEW.amount THEN
        RAISE EXCEPTION 'ledger:balance_cap:%', held;
    END IF;
    SELECT debits_posted INTO issued FROM ledger_accounts WHERE id = 'sys:issuance';
    IF issued > 9223372036854775807 - NEW.amount THEN
        RAISE EXCEPTION 'ledger:ledger_full:%', issued;
    END IF;
    RETURN NEW;
END $$;
