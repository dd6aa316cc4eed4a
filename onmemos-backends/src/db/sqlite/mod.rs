//! The embedded SQLite database (feature `sqlite`): WAL journal, one writer connection (SQLite
//! allows one writer at a time; queueing in the pool is cheaper than contending for the file
//! lock) and a pool of read-only connections reading concurrently from the WAL; the API's hot
//! read and the billing pass's writes go around sqlx (see `inline`). Migrations are embedded
//! from `migrations/sqlite`.

mod config;
mod inline;
pub(crate) mod ledger;
pub(crate) mod sessions;

use std::time::Duration;

use onmemos_core::{Error, Result};
use sqlx::Executor;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

pub use config::SqliteConfig;
pub(crate) use inline::{ColumnIndex, Indexed, Inline, WriterSettings};

use super::sql::{Dialect, SqlDatabase, SqlxResultExt};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// Migrations are tried again this many times when another process applied them meanwhile.
const MIGRATION_ATTEMPTS: u32 = 5;

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    if url.contains('?') {
        format!("{url}&{param}")
    } else {
        format!("{url}?{param}")
    }
}

/// The writer checkpoints by itself only when the WAL reaches this many pages (64 MiB), if the
/// background checkpoints fall behind.
const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

fn pool_options(config: &SqliteConfig, max: u32) -> AnyPoolOptions {
    let mut pragmas = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = {};",
        config.busy_timeout_ms
    );
    if config.checkpoint_interval_ms > 0 {
        pragmas.push_str(&format!(
            " PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES};"
        ));
    }
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
pub async fn connect(config: &SqliteConfig) -> Result<SqlDatabase> {
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
    // Two processes opening a new database at once (`onmemos serve` starting while `onmemos
    // admin` runs) both try the first migration; each runs in a transaction, so the one that
    // lost rolled back and, tried again, finds it applied.
    let mut attempt = 0;
    loop {
        match MIGRATOR.run(&writer).await {
            Ok(()) => break,
            Err(_) if attempt < MIGRATION_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => {
                return Err(Error::internal("SQLite migrations failed").with_source(e));
            }
        }
    }
    // An in-memory database exists only on its one connection: read from the writer.
    let reader = if in_memory {
        writer.clone()
    } else {
        pool_options(config, config.max_readers.max(1))
            .connect_with(parse(&with_param(url, "mode=ro"))?)
            .await
            .db_context("open SQLite readers")?
    };
    let inline = if in_memory {
        None
    } else {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .map_err(|e| Error::configuration(format!("invalid SQLite URL {url:?}: {e}")))?;
        let keep = usize::try_from(config.max_readers.max(1)).unwrap_or(usize::MAX);
        Some(std::sync::Arc::new(Inline::new(
            options.get_filename().to_path_buf(),
            keep,
            WriterSettings {
                busy_timeout_ms: config.busy_timeout_ms,
                autocheckpoint_pages: (config.checkpoint_interval_ms > 0)
                    .then_some(WRITER_CHECKPOINT_PAGES),
            },
        )))
    };
    let db = SqlDatabase::new(writer, reader, Dialect::Sqlite, inline);
    if !in_memory && config.checkpoint_interval_ms > 0 {
        let checkpointer = pool_options(config, 1)
            .connect_with(parse(&writer_url)?)
            .await
            .db_context("open the SQLite checkpoint connection")?;
        let every = Duration::from_millis(config.checkpoint_interval_ms);
        db.spawn_background(checkpoints(checkpointer, every));
    }
    Ok(db)
}

/// Copies the WAL back into the database file every `every`, on its own connection, so the
/// writer's commits never wait for a checkpoint's copy and fsync. Passive: it never blocks the
/// writer or readers, and does what the readers' snapshots allow.
async fn checkpoints(connection: sqlx::AnyPool, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&connection)
            .await
        {
            tracing::warn!(error = %e, "SQLite background checkpoint failed; will retry");
        }
    }
}
