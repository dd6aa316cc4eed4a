-- Sessions with their billing state, and their event trail. The sessions table of 0001 was a
-- placeholder no release wrote to; it is replaced. Same logical schema as
-- migrations/sqlite/0005_sessions.sql (a test compares them).
--
-- Billing: tick k settles hold k-1 and places hold k (hold_id); billed_ms is the running time
-- paid for; covered_until is where the open hold's window ends. version makes every write
-- conditional on what was read; lease_holder/lease_until spread monitor ticks over replicas.

DROP TABLE sessions;

CREATE TABLE sessions (
    id                TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id       TEXT NOT NULL REFERENCES templates (id),
    status            TEXT NOT NULL CHECK (status IN ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed')),
    placement         TEXT NOT NULL CHECK (placement IN ('on_demand', 'spot')),
    cpu_millis        BIGINT NOT NULL CHECK (cpu_millis > 0),
    memory_mib        BIGINT NOT NULL CHECK (memory_mib > 0),
    gpu               BIGINT NOT NULL CHECK (gpu >= 0),
    disk_gib          BIGINT NOT NULL CHECK (disk_gib > 0),
    rate_micros       BIGINT NOT NULL CHECK (rate_micros >= 0),
    max_duration_secs BIGINT NOT NULL,
    max_cost_micros   BIGINT NOT NULL CHECK (max_cost_micros >= 0),
    idle_timeout_secs BIGINT NOT NULL,
    cost_micros       BIGINT NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    stop_reason       TEXT,
    failure           TEXT,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    stopped_at        BIGINT,
    last_activity_at  BIGINT NOT NULL,
    node              TEXT NOT NULL,
    version           BIGINT NOT NULL CHECK (version >= 0),
    tick              BIGINT NOT NULL CHECK (tick >= 0),
    hold_id           TEXT,
    billed_ms         BIGINT NOT NULL CHECK (billed_ms >= 0),
    covered_until     BIGINT,
    next_check_at     BIGINT,
    warned            BIGINT NOT NULL DEFAULT 0,
    lease_holder      TEXT,
    lease_until       BIGINT
);
CREATE INDEX sessions_owner ON sessions (owner_id, id);
CREATE INDEX sessions_workspace ON sessions (workspace_id, id);
CREATE INDEX sessions_due ON sessions (next_check_at) WHERE status = 'running';
CREATE INDEX sessions_node ON sessions (node) WHERE status IN ('pending', 'starting', 'running', 'stopping');

CREATE TABLE session_events (
    seq BIGSERIAL PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX session_events_session ON session_events (session_id, seq);
