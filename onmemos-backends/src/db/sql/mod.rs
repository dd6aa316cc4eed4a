//! The SQL implementation of the `Database` port, shared by SQLite and PostgreSQL.
//!
//! Both databases run the same repository code over `sqlx::Any`: every id is text, every
//! timestamp an integer of milliseconds, every map or list JSON text, and every placeholder
//! `$N` — forms both understand. Where the two really differ (JSON queries, how a write
//! transaction starts, row leases), [`Dialect`] says which text to use. The schemas live in each
//! backend's own migrations (`migrations/sqlite`, `migrations/postgres`), which a test checks
//! for the same logical shape.

mod error;
mod group_commit;
mod idempotency;
pub(crate) mod json_rows;
pub(crate) mod ledger;
pub(crate) mod ledger_batch;
mod repos;
pub(crate) mod rows;
pub(crate) mod sessions;
mod storage_usage;
mod uploads;

use std::sync::Arc;

use async_trait::async_trait;
use onmemos_core::Result;
use onmemos_core::ports::{
    ApiKeyRepo, Database, DatabaseCapabilities, IdempotencyRepo, LedgerRepo, SessionRepo,
    StorageUsageRepo, TemplateRepo, UploadRepo, UserRepo, WorkspaceRepo,
};
use sqlx::AnyPool;

pub(crate) use error::SqlxResultExt;
use group_commit::GroupCommit;
pub use group_commit::GroupCommitStats;
#[cfg(feature = "sqlite")]
pub(crate) use rows::Columns;

/// Which SQL database is behind a [`SqlDatabase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite (WAL, one writer).
    Sqlite,
    /// PostgreSQL (READ COMMITTED, shared by replicas).
    Postgres,
}

/// SQLite's connections around sqlx: reads on the calling thread, the billing pass's writes
/// ([`crate::db::sqlite::Inline`]).
#[cfg(feature = "sqlite")]
pub(crate) type Inline = crate::db::sqlite::Inline;

/// SQLite's connections around sqlx: none in a build without SQLite.
#[cfg(not(feature = "sqlite"))]
#[derive(Debug)]
pub(crate) enum Inline {}

#[cfg(not(feature = "sqlite"))]
impl Inline {
    /// Never called: there is no value of this type.
    pub(crate) fn answered(&self) -> u64 {
        match *self {}
    }

    /// Never called: there is no value of this type.
    pub(crate) fn written(&self) -> u64 {
        match *self {}
    }
}

/// A SQL database: SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlDatabase {
    /// Connections for writes (one, on SQLite).
    pub(crate) writer: AnyPool,
    /// Connections for reads (read-only ones, on SQLite).
    pub(crate) reader: AnyPool,
    pub(crate) dialect: Dialect,
    /// The queue ledger operations are committed through, in batches.
    group: GroupCommit,
    /// Tasks that live as long as the database handle (SQLite's checkpoints; PostgreSQL has
    /// none, so a build without SQLite never reads it).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    background: Arc<BackgroundTasks>,
    /// SQLite's connections around sqlx (a file database's; not an in-memory one).
    pub(crate) inline: Option<Arc<Inline>>,
}

impl SqlDatabase {
    /// Runs a lease claim — `$1` the holder, `$2` now, `$3` the lease's end, `$4` the most rows
    /// — returning the claimed rows. `claim` is an `UPDATE … WHERE key IN (SELECT …` left open:
    /// this closes the sub-select the dialect's way (PostgreSQL skips rows another replica has
    /// locked) and returns every column.
    pub(crate) async fn claim_rows(
        &self,
        claim: &'static str,
        holder: &str,
        now: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        limit: u32,
        what: &'static str,
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        let sql = match self.dialect {
            Dialect::Sqlite => format!("{claim}) RETURNING *"),
            Dialect::Postgres => format!("{claim} FOR UPDATE SKIP LOCKED) RETURNING *"),
        };
        // Built from constants only: the values are bound.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .bind(rows::ms(now))
            .bind(rows::ms(until))
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await
            .db_context(what)
    }
}

/// A write transaction on `writer`: `BEGIN IMMEDIATE` on SQLite, which takes the write lock
/// at once rather than at the first write (a deferred one that reads first may fail to upgrade).
pub(crate) async fn begin_write(
    writer: &AnyPool,
    dialect: Dialect,
) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
    match dialect {
        Dialect::Sqlite => writer.begin_with("BEGIN IMMEDIATE").await,
        Dialect::Postgres => writer.begin().await,
    }
}

/// Background tasks of a database, stopped when the last handle is dropped.
#[derive(Debug, Default)]
struct BackgroundTasks(std::sync::Mutex<Vec<tokio::task::AbortHandle>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        let tasks = self.0.get_mut().unwrap_or_else(|e| e.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

impl SqlDatabase {
    /// A database over its pools; starts the ledger's group-commit task (so it must be called
    /// within a Tokio runtime).
    /// `inline` reads SQLite on the calling thread (a file database's).
    pub(crate) fn new(
        writer: AnyPool,
        reader: AnyPool,
        dialect: Dialect,
        inline: Option<Arc<Inline>>,
    ) -> Self {
        let group = GroupCommit::start(writer.clone(), dialect, inline.clone());
        Self {
            writer,
            reader,
            dialect,
            group,
            background: Arc::default(),
            inline,
        }
    }

    /// How many reads SQLite answered on the calling thread rather than through sqlx's
    /// connection threads (see [`crate::db::sqlite`]); 0 on PostgreSQL and in memory.
    #[must_use]
    pub fn inline_reads(&self) -> u64 {
        self.inline.as_ref().map_or(0, |inline| inline.answered())
    }

    /// How many writes (ledger batches) SQLite ran on its own write connection rather than
    /// through sqlx (see [`crate::db::sqlite`]); 0 on PostgreSQL and in memory.
    #[must_use]
    pub fn inline_writes(&self) -> u64 {
        self.inline.as_ref().map_or(0, |inline| inline.written())
    }

    /// Runs `task` until the last handle to this database is dropped.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn spawn_background(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let handle = tokio::spawn(task).abort_handle();
        self.background
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
    }

    /// How ledger operations have been grouped into commits so far.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.group.stats()
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The pool that writes (for tests and benchmarks that need raw SQL).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl Database for SqlDatabase {
    fn capabilities(&self) -> DatabaseCapabilities {
        match self.dialect {
            Dialect::Sqlite => DatabaseCapabilities::new("sqlite"),
            Dialect::Postgres => DatabaseCapabilities::new("postgres")
                .with_shared_by_replicas(true)
                .with_skip_locked(true),
        }
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .db_context("ping the database")?;
        Ok(())
    }

    fn users(&self) -> &dyn UserRepo {
        self
    }

    fn api_keys(&self) -> &dyn ApiKeyRepo {
        self
    }

    fn workspaces(&self) -> &dyn WorkspaceRepo {
        self
    }

    fn templates(&self) -> &dyn TemplateRepo {
        self
    }

    fn sessions(&self) -> &dyn SessionRepo {
        self
    }

    fn ledger(&self) -> &dyn LedgerRepo {
        self
    }

    fn idempotency(&self) -> &dyn IdempotencyRepo {
        self
    }

    fn storage_usage(&self) -> &dyn StorageUsageRepo {
        self
    }

    fn uploads(&self) -> &dyn UploadRepo {
        self
    }
}
