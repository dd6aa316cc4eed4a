//! The `Database` conformance suite on PostgreSQL: each check gets a fresh database on the
//! server named by `ONMEMOS_TEST_POSTGRES_URL`.
#![cfg(feature = "postgres")]

use std::sync::Arc;

use onmemos_backends::db::SqlDatabase;
use onmemos_backends::testing::fresh_postgres_url;
use onmemos_core::ports::Database;

async fn fresh() -> Option<Arc<dyn Database>> {
    let url = fresh_postgres_url().await?;
    let db = SqlDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open PostgreSQL: {e}"));
    Some(Arc::new(db))
}

onmemos_core::database_conformance!(|| fresh());

#[tokio::test]
async fn migrations_run_once_when_replicas_start_together() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let (a, b) = tokio::join!(SqlDatabase::open(&url), SqlDatabase::open(&url));
    let (a, b) = (
        a.unwrap_or_else(|e| panic!("{e}")),
        b.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(a.capabilities().name, "postgres");
    assert!(b.capabilities().shared_by_replicas);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(a.writer())
        .await
        .unwrap_or_default();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .map(|d| d.count())
        .unwrap_or_default();
    assert_eq!(applied as usize, files);
}
