//! `Database` implementations. Both SQL databases share one implementation, [`SqlDatabase`];
//! each has its own module for what is its own (configuration, connection set-up, migrations),
//! behind its feature.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::sync::Arc;

use onmemos_core::ports::Database;
use onmemos_core::{Error, Result};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::{Dialect, GroupCommitStats, SqlDatabase};

// The one place a database URL's scheme picks a backend: `sql` knows neither dialect's
// connection set-up, and each dialect's module only builds a `SqlDatabase`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl SqlDatabase {
    /// Opens the database named by `url` (`sqlite://…`, `sqlite::memory:`, `postgres://…`),
    /// with default settings, running pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            #[cfg(feature = "sqlite")]
            "sqlite" => sqlite::connect(&sqlite::SqliteConfig::new(url)).await,
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => {
                postgres::connect(&postgres::PostgresConfig::new(url)).await
            }
            _ => Err(unsupported_url(url)),
        }
    }
}

/// Opens the database named by `url`: `sqlite://path` or `sqlite::memory:` (feature `sqlite`),
/// `postgres://…` (feature `postgres`). An unknown scheme, or one whose feature is off, is a
/// configuration error that names the feature.
pub async fn connect(url: &str) -> Result<Arc<dyn Database>> {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    {
        Ok(Arc::new(SqlDatabase::open(url).await?))
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    {
        Err(unsupported_url(url))
    }
}

/// The error for a URL no compiled-in backend serves.
pub(crate) fn unsupported_url(url: &str) -> Error {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => crate::feature_off("sqlite", url),
        "postgres" | "postgresql" => crate::feature_off("postgres", url),
        _ => Error::configuration(format!(
            "unknown database URL scheme `{scheme}` in {url:?}: expected sqlite:// or postgres://"
        )),
    }
}
