-- Sessions with their billing state, and their event trail. The sessions table of 0001 was a
-- placeholder no release wrote to; it is replaced. Same logical schema as
-- migrations/postgres/0005_sessions.sql (a test compares them).
--
-- Billing: tick k settles hold k-1 and places hold k (hold_id); billed_ms is the running time
-- paid for; covered_until is where the open hold's window ends. version makes every write
-- conditional on what was read; lease_holder/lease_until spread monitor ticks over replicas.

DROP TABLE sessions;

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY NOT NULL,
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id       TEXT NOT NULL REFERENCES templates (id),
    status            TEXT NOT NULL CHECK (status IN ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed')),
    placement         TEXT NOT NULL CHECK (placement IN ('on_demand', 'spot')),
    cpu_millis        INTEGER NOT NULL CHECK (cpu_millis > 0),
    memory_mib        INTEGER NOT NULL CHECK (memory_mib > 0),
    gpu               INTEGER NOT NULL CHECK (gpu >= 0),
    disk_gib          INTEGER NOT NULL CHECK (disk_gib > 0),
    rate_micros       INTEGER NOT NULL CHECK (rate_micros >= 0),
    max_duration_secs INTEGER NOT NULL,
    max_cost_micros   INTEGER NOT NULL CHECK (max_cost_micros >= 0),
    idle_timeout_secs INTEGER NOT NULL,
    cost_micros       INTEGER NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    stop_reason       TEXT,
    failure           TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    stopped_at        INTEGER,
    last_activity_at  INTEGER NOT NULL,
    node              TEXT NOT NULL,
    version           INTEGER NOT NULL CHECK (version >= 0),
    tick              INTEGER NOT NULL CHECK (tick >= 0),
    hold_id           TEXT,
    billed_ms         INTEGER NOT NULL CHECK (billed_ms >= 0),
    covered_until     INTEGER,
    next_check_at     INTEGER,
    warned            INTEGER NOT NULL DEFAULT 0,
    lease_holder      TEXT,
    lease_until       INTEGER
) STRICT;
CREATE INDEX sessions_owner ON sessions (owner_id, id);
CREATE INDEX sessions_workspace ON sessions (workspace_id, id);
CREATE INDEX sessions_due ON sessions (next_check_at) WHERE status = 'running';
CREATE INDEX sessions_node ON sessions (node) WHERE status IN ('pending', 'starting', 'running', 'stopping');

CREATE TABLE session_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL CHECK (json_valid(data)),
    message     TEXT NOT NULL
) STRICT;
CREATE INDEX session_events_session ON session_events (session_id, seq);
