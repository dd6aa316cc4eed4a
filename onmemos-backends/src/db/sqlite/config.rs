//! Settings of the SQLite backend.

use serde::{Deserialize, Serialize};

/// Where the SQLite database lives and how it is opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// `sqlite://path/to/file.db` or `sqlite::memory:`.
    pub url: String,
    /// Read-only connections reading concurrently from the WAL.
    pub max_readers: u32,
    /// How long a writer waits for another process's lock before failing, in milliseconds.
    pub busy_timeout_ms: u64,
    /// How often a background connection copies the WAL back into the database file (a
    /// passive checkpoint, which also does the fsync), in milliseconds. This keeps checkpoints
    /// and their fsync off the writer's commits; the writer checkpoints by itself only if the
    /// WAL reaches 64 MiB. `0` leaves checkpoints to SQLite's default (the writer, every
    /// 1,000 pages).
    pub checkpoint_interval_ms: u64,
}

impl SqliteConfig {
    /// Default settings for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://onmemos.db".into(),
            max_readers: 8,
            busy_timeout_ms: 5_000,
            checkpoint_interval_ms: 250,
        }
    }
}
