-- Storage billing: one record per workspace (see StorageUsageRecord). Same logical schema as
-- migrations/postgres/0006_storage_usage.sql (a test compares them).
--
-- Sample k measures the workspace's bytes; the time until sample k+1 is charged at those bytes.
-- carry keeps the remainder below one micro-credit, so the total is exact however time is split.
-- A charge is written as pending_micros first, then posted as transfer <workspace>.storage.<step>.

CREATE TABLE storage_usage (
    workspace_id   TEXT PRIMARY KEY NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    step           INTEGER NOT NULL CHECK (step >= 0),
    sampled_at     INTEGER NOT NULL,
    bytes          INTEGER NOT NULL CHECK (bytes >= 0),
    carry          INTEGER NOT NULL CHECK (carry >= 0),
    owed_micros    INTEGER NOT NULL CHECK (owed_micros >= 0),
    charged_micros INTEGER NOT NULL CHECK (charged_micros >= 0),
    pending_micros INTEGER CHECK (pending_micros > 0),
    next_sample_at INTEGER NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 0),
    lease_holder   TEXT,
    lease_until    INTEGER
) STRICT;
CREATE INDEX storage_usage_due ON storage_usage (next_sample_at);
