//! Conversion of sqlx errors (SQLite's and PostgreSQL's, through `Any`) into the core error,
//! in one place.

use onmemos_core::{Error, ErrorKind};
use sqlx::error::ErrorKind as DbErrorKind;

/// SQLite's primary result codes for "the database is busy/locked".
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// Whether a PostgreSQL SQLSTATE means "try the transaction again" (serialization failure,
/// deadlock) or "the server is going away / out of connections".
pub(super) fn postgres_transient(code: &str) -> bool {
    matches!(
        code,
        "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
    ) || code.starts_with("08")
}

/// Converts a sqlx error met while doing `what` into the core error.
pub(crate) fn convert(what: &'static str, err: sqlx::Error) -> Error {
    let kind = match &err {
        sqlx::Error::Database(db) => match db.kind() {
            DbErrorKind::UniqueViolation => {
                return Error::conflict("a resource with that name already exists")
                    .with_context("operation", what)
                    .with_source(err);
            }
            DbErrorKind::ForeignKeyViolation => {
                return Error::conflict("the resource is referenced by, or refers to, another")
                    .with_context("operation", what)
                    .with_source(err);
            }
            DbErrorKind::CheckViolation | DbErrorKind::NotNullViolation => ErrorKind::InvalidInput,
            _ => {
                let code = db.code().unwrap_or_default();
                // SQLite's extended result codes carry the primary code in their low byte.
                let primary = code.parse::<i32>().ok().map(|c| c & 0xff);
                if matches!(primary, Some(SQLITE_BUSY | SQLITE_LOCKED)) || postgres_transient(&code)
                {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Internal
                }
            }
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            ErrorKind::Unavailable
        }
        sqlx::Error::RowNotFound => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("database error while trying to {what}")).with_source(err)
}

/// `.db_context("what")` on sqlx results.
pub(crate) trait SqlxResultExt<T> {
    /// Converts the error, saying what was being done.
    fn db_context(self, what: &'static str) -> Result<T, Error>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn db_context(self, what: &'static str) -> Result<T, Error> {
        self.map_err(|e| convert(what, e))
    }
}

/// A stored value that cannot be decoded: the database was changed behind our back.
pub(crate) fn corrupt(column: &'static str, value: impl std::fmt::Display) -> Error {
    let mut shown = value.to_string();
    shown.truncate(64);
    Error::internal(format!(
        "stored value of {column} cannot be decoded: {shown:?}"
    ))
}
