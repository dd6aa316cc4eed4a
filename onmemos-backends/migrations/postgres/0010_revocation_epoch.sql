-- The revocation epoch: raised by every API key revocation in the same transaction, so that a
-- replica caching authenticated keys (onmemos_core::auth_cache) learns of revocations by
-- reading this one row.
CREATE TABLE auth_epoch (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    epoch  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);
