-- Storage billing: one record per workspace (see StorageUsageRecord). Same logical schema as
-- migrations/sqlite/0006_storage_usage.sql (a test compares them).
--
-- Sample k measures the workspace's bytes; the time until sample k+1 is charged at those bytes.
-- carry keeps the remainder below one micro-credit, so the total is exact however time is split.
-- A charge is written as pending_micros first, then posted as transfer <workspace>.storage.<step>.

CREATE TABLE storage_usage (
    workspace_id   TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    step           BIGINT NOT NULL CHECK (step >= 0),
    sampled_at     BIGINT NOT NULL,
    bytes          BIGINT NOT NULL CHECK (bytes >= 0),
    carry          BIGINT NOT NULL CHECK (carry >= 0),
    owed_micros    BIGINT NOT NULL CHECK (owed_micros >= 0),
    charged_micros BIGINT NOT NULL CHECK (charged_micros >= 0),
    pending_micros BIGINT CHECK (pending_micros > 0),
    next_sample_at BIGINT NOT NULL,
    version        BIGINT NOT NULL CHECK (version >= 0),
    lease_holder   TEXT,
    lease_until    BIGINT
);
CREATE INDEX storage_usage_due ON storage_usage (next_sample_at);
