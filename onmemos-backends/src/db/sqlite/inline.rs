//! Point reads on the calling thread, and the billing pass's writes on a connection of their
//! own.
//!
//! sqlx runs each SQLite connection on a worker thread of its own: every query is a message
//! to that thread and a wake-up back, two context switches that cost more than the read
//! itself (a primary-key lookup of one row is a few microseconds). The API's hot reads (one
//! session by id) instead run here, on the task's own thread, through read-only connections
//! kept in a small pool. The read sees the last committed state, as the sqlx readers do (WAL
//! readers never wait for the writer).
//!
//! Such a read holds the thread for the read's duration: a lookup by primary key, whose pages
//! are in SQLite's cache or the OS's. The connections never wait for a lock (no busy timeout):
//! when SQLite answers `SQLITE_BUSY` (a WAL reset in progress), or anything else goes wrong,
//! the caller reads through sqlx instead, which waits and reports errors as every other read.
//!
//! The billing pass's writes (the claim of due sessions, the ledger batch, a tick's records and
//! events) run on one read-write `rusqlite` connection, on a blocking thread, with every row
//! bound to a prepared statement: through sqlx a batch's rows travel as JSON that SQLite parses
//! again column by column, and every statement and returned row is a hop between threads. Such
//! a write holds the sqlx writer connection while it runs, so it never contends with the
//! process's other writes; SQLite has one writer either way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use onmemos_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};

use crate::db::sql::Columns;

/// Read-only connections to one SQLite file, used on the calling thread, and a write
/// connection used on a blocking thread under the sqlx writer's lease.
#[derive(Debug)]
pub(crate) struct Inline {
    path: PathBuf,
    /// One connection each (opened on first use). A read takes the first slot it can lock
    /// without waiting: a reader never sleeps on another's lock, and no lock is shared by
    /// every read.
    slots: Box<[Mutex<Slot>]>,
    /// The write connection (opened on first use), and how it is set up.
    writer: Arc<Mutex<Option<Connection>>>,
    settings: WriterSettings,
    /// Writes done on the write connection.
    written: Arc<AtomicU64>,
}

/// How the write connection is set up: as the sqlx writer is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterSettings {
    /// How long a write waits for another process's.
    pub(crate) busy_timeout_ms: u64,
    /// The WAL size (pages) at which a commit checkpoints by itself; `None` for SQLite's
    /// default.
    pub(crate) autocheckpoint_pages: Option<u32>,
}

#[derive(Debug, Default)]
struct Slot {
    connection: Option<Connection>,
    /// Reads this slot answered.
    answered: u64,
}

impl Inline {
    /// Up to `slots` read connections to the file at `path`, and a write connection set up
    /// with `settings`.
    pub(crate) fn new(path: PathBuf, slots: usize, settings: WriterSettings) -> Self {
        Self {
            path,
            slots: (0..slots.max(1)).map(|_| Mutex::default()).collect(),
            writer: Arc::default(),
            settings,
            written: Arc::default(),
        }
    }

    fn open_writer(path: &Path, settings: WriterSettings) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        connection.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {};",
            settings.busy_timeout_ms
        ))?;
        if let Some(pages) = settings.autocheckpoint_pages {
            connection.pragma_update(None, "wal_autocheckpoint", pages)?;
        }
        connection.set_prepared_statement_cache_capacity(64);
        Ok(connection)
    }

    /// Runs `write` on the write connection, on a blocking thread, while holding the sqlx
    /// writer connection of `lease`: SQLite has one writer, and holding that connection keeps
    /// every other write of this process out until `write` is done. A connection that failed
    /// is opened afresh next time.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        lease: &sqlx::AnyPool,
        write: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        use crate::db::sql::SqlxResultExt;
        let lease = lease.acquire().await.db_context("take the SQLite writer")?;
        let slot = self.writer.clone();
        let path = self.path.clone();
        let settings = self.settings;
        let written = self.written.clone();
        // The lease goes with the write and comes back with its result: even if the caller
        // stops waiting, no other write of the process starts before this one ends.
        let (done, lease) = tokio::task::spawn_blocking(move || {
            let done = Self::write_on(&slot, &path, settings, &written, write);
            (done, lease)
        })
        .await
        .map_err(|e| Error::internal("the SQLite write thread failed").with_source(e))?;
        drop(lease);
        done
    }

    /// [`Self::write`]'s part on the blocking thread.
    fn write_on<T>(
        slot: &Mutex<Option<Connection>>,
        path: &Path,
        settings: WriterSettings,
        written: &AtomicU64,
        write: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let mut connection = slot.lock().unwrap_or_else(|e| e.into_inner());
        if connection.is_none() {
            *connection = Some(Self::open_writer(path, settings).map_err(|e| {
                Error::unavailable("could not open the SQLite write connection").with_source(e)
            })?);
        }
        let c = connection
            .as_mut()
            .ok_or_else(|| Error::internal("no SQLite write connection"))?;
        let done = write(c);
        written.fetch_add(1, Ordering::Relaxed);
        if c.is_autocommit() {
            done
        } else {
            // A transaction left open (a failure the caller did not roll back): this
            // connection is not to be trusted again.
            *connection = None;
            done.and(Err(Error::internal(
                "a SQLite write left its transaction open",
            )))
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        connection.pragma_update(None, "query_only", true)?;
        Ok(connection)
    }

    /// `read` on a free connection; `None` if it failed or every connection is in use (as
    /// many reads as slots run on other threads), so that the caller reads through sqlx.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let mut slot = self.slots.iter().find_map(|s| match s.try_lock() {
            Ok(slot) => Some(slot),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        })?;
        if slot.connection.is_none() {
            slot.connection = Some(self.open().ok()?);
        }
        let result = read(slot.connection.as_ref()?);
        match result {
            Ok(value) => {
                slot.answered += 1;
                Some(value)
            }
            Err(_) => {
                // A fresh connection next time.
                slot.connection = None;
                None
            }
        }
    }

    /// How many writes ran on the write connection (not through sqlx).
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// How many reads were answered here (not by sqlx).
    pub(crate) fn answered(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).answered)
            .sum()
    }
}

/// The positions of a query's columns by name: rusqlite's lookup by name asks SQLite for every
/// column's name on every access, which cost more than the read itself.
#[derive(Debug)]
pub(crate) struct ColumnIndex(HashMap<Box<str>, usize>);

impl ColumnIndex {
    /// The positions of `columns`, a `SELECT` list of plain names (`"a, b, c"`).
    pub(crate) fn of(columns: &str) -> Self {
        Self(
            columns
                .split(',')
                .map(str::trim)
                .enumerate()
                .map(|(i, c)| (c.into(), i))
                .collect(),
        )
    }

    /// The positions of the columns `statement` answers (asked once per query, not per row).
    pub(crate) fn of_statement(statement: &rusqlite::Statement<'_>) -> Self {
        Self(
            statement
                .column_names()
                .into_iter()
                .enumerate()
                .map(|(i, c)| (c.into(), i))
                .collect(),
        )
    }
}

/// A row of a query whose columns `index` names.
pub(crate) struct Indexed<'r, 's> {
    /// The row.
    pub(crate) row: &'r rusqlite::Row<'s>,
    /// Its columns' positions.
    pub(crate) index: &'r ColumnIndex,
}

impl Indexed<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, column: &'static str) -> Result<T> {
        let at = self
            .index
            .0
            .get(column)
            .copied()
            .ok_or_else(|| Error::internal(format!("column {column} is not in the query")))?;
        self.row
            .get(at)
            .map_err(|e| Error::internal(format!("read column {column}")).with_source(e))
    }
}

impl Columns for Indexed<'_, '_> {
    fn text(&self, column: &'static str) -> Result<Option<String>> {
        self.get(column)
    }

    fn num(&self, column: &'static str) -> Result<Option<i64>> {
        self.get(column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: WriterSettings = WriterSettings {
        busy_timeout_ms: 1_000,
        autocheckpoint_pages: None,
    };

    #[test]
    fn reads_committed_rows_and_fails_over_to_none() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("db.sqlite");
        let writer = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let reader = Inline::new(path, 2, SETTINGS);
        let read = |r: &Inline| {
            r.read(|c| c.query_row("SELECT sum(v) FROM t", [], |row| row.get::<_, i64>(0)))
        };
        assert_eq!(read(&reader), Some(7));
        writer
            .execute("INSERT INTO t VALUES (5)", [])
            .unwrap_or_else(|e| panic!("{e}"));
        // The kept connection sees the new commit.
        assert_eq!(read(&reader), Some(12));
        // Writes are refused on these connections, and a failure is a `None`.
        assert_eq!(
            reader.read(|c| c.execute("INSERT INTO t VALUES (1)", [])),
            None
        );
        assert_eq!(read(&reader), Some(12));
        assert_eq!(reader.answered(), 3);
        // A file that is not there: `None`, not a panic.
        let gone = Inline::new(dir.path().join("missing.sqlite"), 1, SETTINGS);
        assert_eq!(read(&gone), None);
    }

    /// A write that leaves its transaction open is an error, and the next write gets a fresh
    /// connection that sees only what was committed; a failed write is reported with its kind.
    #[tokio::test]
    async fn writes_report_failures_and_never_leave_a_transaction_open() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("db.sqlite");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let lease = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::raw_sql("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .execute(&lease)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let inline = Inline::new(path, 1, SETTINGS);
        let sum = || {
            inline.write(&lease, |c| {
                c.query_row("SELECT COALESCE(SUM(v), 0) FROM t", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(|e| super::super::ledger::error("sum", e))
            })
        };

        let committed = inline
            .write(&lease, |c| {
                c.execute("INSERT INTO t VALUES (3)", [])
                    .map_err(|e| super::super::ledger::error("insert", e))
            })
            .await;
        assert_eq!(committed.ok(), Some(1));
        let left_open = inline
            .write(&lease, |c| {
                c.execute_batch("BEGIN; INSERT INTO t VALUES (4);")
                    .map_err(|e| super::super::ledger::error("insert", e))
            })
            .await;
        assert!(
            matches!(&left_open, Err(e) if e.kind() == onmemos_core::ErrorKind::Internal),
            "{left_open:?}"
        );
        // The open transaction went with its connection: 4 was never committed.
        assert_eq!(sum().await.ok(), Some(3));
        let duplicate = inline
            .write(&lease, |c| {
                c.execute("INSERT INTO t VALUES (3)", [])
                    .map_err(|e| super::super::ledger::error("insert", e))
            })
            .await;
        assert!(
            matches!(&duplicate, Err(e) if e.kind() == onmemos_core::ErrorKind::Conflict),
            "{duplicate:?}"
        );
        assert_eq!(inline.written(), 4);
        // The sqlx writer is free again once a write is done.
        sqlx::query("INSERT INTO t VALUES (5)")
            .execute(&lease)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sum().await.ok(), Some(8));
    }
}
