//! PostgreSQL (feature `postgres`): the database several server replicas share. READ COMMITTED
//! transactions, retried on serialization failures and deadlocks; migrations embedded from
//! `migrations/postgres`.

use std::time::Duration;

use onmemos_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

use super::sql::{Dialect, SqlDatabase, SqlxResultExt};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Where the PostgreSQL database is and how many connections to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Most connections this process opens for writes; reads have a pool of their own, of
    /// half as many.
    pub max_connections: u32,
    /// How long to wait for a free connection, in milliseconds.
    pub acquire_timeout_ms: u64,
}

impl PostgresConfig {
    /// Default settings for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgres://localhost/onmemos".into(),
            max_connections: 32,
            acquire_timeout_ms: 30_000,
        }
    }
}

/// Connects to the PostgreSQL database of `config` and applies pending migrations (under an
/// advisory lock, so replicas starting together migrate once).
pub(crate) async fn connect(config: &PostgresConfig) -> Result<SqlDatabase> {
    sqlx::any::install_default_drivers();
    let options = config.url.parse::<AnyConnectOptions>().map_err(|e| {
        Error::configuration("invalid PostgreSQL URL (key `database_url`)").with_source(e)
    })?;
    let pool = AnyPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_with(options.clone())
        .await
        .db_context("connect to PostgreSQL")?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| Error::internal("PostgreSQL migrations failed").with_source(e))?;
    // Reads have connections of their own, so that a burst of writes (ledger batches,
    // billing) never makes a read path wait for a connection.
    let readers = AnyPoolOptions::new()
        .max_connections((config.max_connections / 2).max(1))
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_lazy_with(options);
    Ok(SqlDatabase::new(pool, readers, Dialect::Postgres, None))
}
