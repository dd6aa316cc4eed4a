-- Resumable uploads in progress (see UploadRecord) and the parts they received. Same logical
-- schema as migrations/postgres/0007_uploads.sql (a test compares them).
--
-- An upload's announced size counts against its workspace's quota until it completes; rows
-- go with their workspace (the storage service aborts the store's side first).

CREATE TABLE uploads (
    id              TEXT PRIMARY KEY NOT NULL,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path            TEXT NOT NULL,
    size            INTEGER NOT NULL CHECK (size >= 0),
    part_size       INTEGER NOT NULL CHECK (part_size > 0),
    content_type    TEXT,
    store_upload_id TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX uploads_workspace ON uploads (workspace_id);
CREATE INDEX uploads_expiry ON uploads (expires_at);

CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    number    INTEGER NOT NULL CHECK (number >= 0),
    size      INTEGER NOT NULL CHECK (size >= 0),
    tag       TEXT NOT NULL,
    PRIMARY KEY (upload_id, number)
) STRICT;
