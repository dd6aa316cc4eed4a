//! `Database` implementations, one module per backend, each behind its feature.

#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::sync::Arc;

use onmemos_core::ports::Database;
use onmemos_core::{Error, Result};

/// Opens the database named by `url`: `sqlite://path` or `sqlite::memory:` (feature `sqlite`),
/// `postgres://…` (feature `postgres`). An unknown scheme, or one whose feature is off, is a
/// configuration error that names the feature.
pub async fn connect(url: &str) -> Result<Arc<dyn Database>> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => {
            #[cfg(feature = "sqlite")]
            {
                Ok(Arc::new(sqlite::SqliteDatabase::open(url).await?))
            }
            #[cfg(not(feature = "sqlite"))]
            {
                Err(crate::feature_off("sqlite", url))
            }
        }
        "postgres" | "postgresql" => Err(crate::feature_off("postgres", url)),
        _ => Err(Error::configuration(format!(
            "unknown database URL scheme `{scheme}` in {url:?}: expected sqlite:// or postgres://"
        ))),
    }
}
