-- Responses to POST requests that carried an Idempotency-Key, per user, so a retry gets the
-- stored answer instead of a second effect.
CREATE TABLE idempotency_records (
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    done          INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    status        INTEGER,
    content_type  TEXT,
    body          TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;
