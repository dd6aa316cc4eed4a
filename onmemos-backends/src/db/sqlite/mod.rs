//! The embedded SQLite database (feature `sqlite`): WAL journal, one writer connection (SQLite
//! allows one writer at a time; queueing in the pool is cheaper than contending for the file
//! lock) and a pool of read-only connections reading concurrently from the WAL. Migrations are
//! embedded from `migrations/sqlite`.

mod config;

use std::time::Duration;

use onmemos_core::{Error, Result};
use sqlx::Executor;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

pub use config::SqliteConfig;

use super::sql::{Dialect, SqlDatabase, SqlxResultExt};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    if url.contains('?') {
        format!("{url}&{param}")
    } else {
        format!("{url}?{param}")
    }
}

fn pool_options(config: &SqliteConfig, max: u32) -> AnyPoolOptions {
    let pragmas = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = {};",
        config.busy_timeout_ms
    );
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                Ok(())
            })
        })
}

/// Opens (creating if missing) the SQLite database of `config` and applies pending migrations.
pub(crate) async fn connect(config: &SqliteConfig) -> Result<SqlDatabase> {
    sqlx::any::install_default_drivers();
    let url = &config.url;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let parse = |u: &str| {
        u.parse::<AnyConnectOptions>()
            .map_err(|e| Error::configuration(format!("invalid SQLite URL {url:?}: {e}")))
    };
    let writer_url = if in_memory {
        url.clone()
    } else {
        with_param(url, "mode=rwc")
    };
    let writer = pool_options(config, 1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(parse(&writer_url)?)
        .await
        .db_context("open the SQLite database")?;
    MIGRATOR
        .run(&writer)
        .await
        .map_err(|e| Error::internal("SQLite migrations failed").with_source(e))?;
    // An in-memory database exists only on its one connection: read from the writer.
    let reader = if in_memory {
        writer.clone()
    } else {
        pool_options(config, config.max_readers.max(1))
            .connect_with(parse(&with_param(url, "mode=ro"))?)
            .await
            .db_context("open SQLite readers")?
    };
    Ok(SqlDatabase::new(writer, reader, Dialect::Sqlite))
}
