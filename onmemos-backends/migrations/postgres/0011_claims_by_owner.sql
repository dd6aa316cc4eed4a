-- Due sessions are claimed in (due time, owner) order, so that one owner's sessions tend to
-- land in the same billing batch: two replicas' batches then lock different accounts.
DROP INDEX sessions_due;
CREATE INDEX sessions_due ON sessions (next_check_at, owner_id) WHERE status = 'running';
