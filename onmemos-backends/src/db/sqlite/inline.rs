//! Point reads on the calling thread.
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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, TryLockError};

use onmemos_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};

use crate::db::sql::Columns;

/// Read-only connections to one SQLite file, used on the calling thread.
#[derive(Debug)]
pub(crate) struct InlineReader {
    path: PathBuf,
    /// One connection each (opened on first use). A read takes the first slot it can lock
    /// without waiting: a reader never sleeps on another's lock, and no lock is shared by
    /// every read.
    slots: Box<[Mutex<Slot>]>,
}

#[derive(Debug, Default)]
struct Slot {
    connection: Option<Connection>,
    /// Reads this slot answered.
    answered: u64,
}

impl InlineReader {
    /// Up to `slots` connections to the file at `path`.
    pub(crate) fn new(path: PathBuf, slots: usize) -> Self {
        Self {
            path,
            slots: (0..slots.max(1)).map(|_| Mutex::default()).collect(),
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
        // The API's reads and the ledger batch's loads: room for all of their statements.
        connection.set_prepared_statement_cache_capacity(64);
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

    /// Runs `sql` with `param` bound at `$1` and parses each row it answers with `parse`;
    /// `None` as [`Self::read`] (the caller reads through sqlx instead). A row `parse` refuses
    /// is an error of the answer, not a reason to read again.
    pub(crate) fn rows<T>(
        &self,
        sql: &str,
        param: &str,
        parse: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Option<Result<Vec<T>>> {
        self.read(|c| {
            let mut statement = c.prepare_cached(sql)?;
            let index = ColumnIndex::of_statement(&statement);
            let mut rows = statement.query([param])?;
            let mut parsed = Vec::new();
            while let Some(row) = rows.next()? {
                parsed.push(parse(&Indexed { row, index: &index }));
            }
            Ok(parsed.into_iter().collect())
        })
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
    fn of_statement(statement: &rusqlite::Statement<'_>) -> Self {
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
        let reader = InlineReader::new(path, 2);
        let read = |r: &InlineReader| {
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
        let gone = InlineReader::new(dir.path().join("missing.sqlite"), 1);
        assert_eq!(read(&gone), None);
    }
}
