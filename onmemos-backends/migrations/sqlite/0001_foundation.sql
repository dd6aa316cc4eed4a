-- Users, API keys, workspaces, templates and sessions.
-- Timestamps are Unix milliseconds (INTEGER); ids are prefixed UUIDv7 text, so ordering by id
-- is ordering by creation time; JSON columns hold maps and lists.

CREATE TABLE users (
    id          TEXT PRIMARY KEY NOT NULL,
    email       TEXT NOT NULL COLLATE NOCASE,
    name        TEXT,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    digest        TEXT NOT NULL CHECK (length(digest) = 64),
    scopes        TEXT NOT NULL CHECK (json_valid(scopes)),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) STRICT;
CREATE UNIQUE INDEX api_keys_digest ON api_keys (digest);
CREATE INDEX api_keys_user ON api_keys (user_id, id);

CREATE TABLE workspaces (
    id           TEXT PRIMARY KEY NOT NULL,
    owner_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT,
    env          TEXT NOT NULL CHECK (json_valid(env)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX workspaces_owner_name ON workspaces (owner_id, name);
CREATE INDEX workspaces_owner ON workspaces (owner_id, id);

CREATE TABLE templates (
    id                 TEXT PRIMARY KEY NOT NULL,
    owner_id           TEXT REFERENCES users (id) ON DELETE CASCADE, -- NULL: built-in
    name               TEXT NOT NULL,
    description        TEXT,
    category           TEXT NOT NULL CHECK (category IN ('python', 'nodejs', 'data-science', 'ml', 'custom')),
    image              TEXT NOT NULL,
    cpu_millis         INTEGER NOT NULL CHECK (cpu_millis > 0),
    memory_mib         INTEGER NOT NULL CHECK (memory_mib > 0),
    gpu                INTEGER NOT NULL CHECK (gpu >= 0),
    disk_gib           INTEGER NOT NULL CHECK (disk_gib > 0),
    env                TEXT NOT NULL CHECK (json_valid(env)),
    max_duration_secs  INTEGER NOT NULL,
    max_cost_micros    INTEGER NOT NULL CHECK (max_cost_micros >= 0),
    idle_timeout_secs  INTEGER NOT NULL,
    tags               TEXT NOT NULL CHECK (json_valid(tags)),
    expected_start_ms  INTEGER NOT NULL,
    usage_count        INTEGER NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    created_at         INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX templates_builtin_name ON templates (name) WHERE owner_id IS NULL;
CREATE UNIQUE INDEX templates_owner_name ON templates (owner_id, name) WHERE owner_id IS NOT NULL;

CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY NOT NULL,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id        TEXT NOT NULL REFERENCES templates (id),
    status             TEXT NOT NULL CHECK (status IN ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed')),
    placement          TEXT NOT NULL CHECK (placement IN ('on_demand', 'spot')),
    max_duration_secs  INTEGER NOT NULL,
    max_cost_micros    INTEGER NOT NULL CHECK (max_cost_micros >= 0),
    idle_timeout_secs  INTEGER NOT NULL,
    cost_micros        INTEGER NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    stop_reason        TEXT,
    created_at         INTEGER NOT NULL,
    started_at         INTEGER,
    stopped_at         INTEGER,
    last_activity_at   INTEGER
) STRICT;
CREATE INDEX sessions_owner ON sessions (owner_id, id);
CREATE INDEX sessions_workspace ON sessions (workspace_id, id);
CREATE INDEX sessions_active ON sessions (status) WHERE status IN ('pending', 'starting', 'running', 'stopping');
