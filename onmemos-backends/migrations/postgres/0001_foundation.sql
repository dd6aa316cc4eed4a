-- Users, API keys, workspaces, templates and sessions: the same logical schema as
-- migrations/sqlite/0001_foundation.sql (a test compares them).
-- Timestamps are Unix milliseconds (BIGINT); ids are prefixed UUIDv7 text, so ordering by id
-- is ordering by creation time (byte order: COLLATE "C"); JSON columns hold maps and lists as
-- text.

CREATE TABLE users (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    email       TEXT NOT NULL,
    name        TEXT,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    digest        TEXT NOT NULL CHECK (length(digest) = 64),
    scopes        TEXT NOT NULL CHECK (scopes::jsonb IS NOT NULL),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX api_keys_digest ON api_keys (digest);
CREATE INDEX api_keys_user ON api_keys (user_id, id);

CREATE TABLE workspaces (
    id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    owner_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT,
    env          TEXT NOT NULL CHECK (env::jsonb IS NOT NULL),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX workspaces_owner_name ON workspaces (owner_id, name);
CREATE INDEX workspaces_owner ON workspaces (owner_id, id);

CREATE TABLE templates (
    id                 TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    owner_id           TEXT REFERENCES users (id) ON DELETE CASCADE, -- NULL: built-in
    name               TEXT NOT NULL,
    description        TEXT,
    category           TEXT NOT NULL CHECK (category IN ('python', 'nodejs', 'data-science', 'ml', 'custom')),
    image              TEXT NOT NULL,
    cpu_millis         BIGINT NOT NULL CHECK (cpu_millis > 0),
    memory_mib         BIGINT NOT NULL CHECK (memory_mib > 0),
    gpu                BIGINT NOT NULL CHECK (gpu >= 0),
    disk_gib           BIGINT NOT NULL CHECK (disk_gib > 0),
    env                TEXT NOT NULL CHECK (env::jsonb IS NOT NULL),
    max_duration_secs  BIGINT NOT NULL,
    max_cost_micros    BIGINT NOT NULL CHECK (max_cost_micros >= 0),
    idle_timeout_secs  BIGINT NOT NULL,
    tags               TEXT NOT NULL CHECK (tags::jsonb IS NOT NULL),
    expected_start_ms  BIGINT NOT NULL,
    usage_count        BIGINT NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    created_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX templates_builtin_name ON templates (name) WHERE owner_id IS NULL;
CREATE UNIQUE INDEX templates_owner_name ON templates (owner_id, name) WHERE owner_id IS NOT NULL;

CREATE TABLE sessions (
    id                 TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id        TEXT NOT NULL REFERENCES templates (id),
    status             TEXT NOT NULL CHECK (status IN ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed')),
    placement          TEXT NOT NULL CHECK (placement IN ('on_demand', 'spot')),
    max_duration_secs  BIGINT NOT NULL,
    max_cost_micros    BIGINT NOT NULL CHECK (max_cost_micros >= 0),
    idle_timeout_secs  BIGINT NOT NULL,
    cost_micros        BIGINT NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    stop_reason        TEXT,
    created_at         BIGINT NOT NULL,
    started_at         BIGINT,
    stopped_at         BIGINT,
    last_activity_at   BIGINT
);
CREATE INDEX sessions_owner ON sessions (owner_id, id);
CREATE INDEX sessions_workspace ON sessions (workspace_id, id);
CREATE INDEX sessions_active ON sessions (status) WHERE status IN ('pending', 'starting', 'running', 'stopping');
