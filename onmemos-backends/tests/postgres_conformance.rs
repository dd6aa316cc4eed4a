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

/// The monitor's claim of due sessions writes each session in place: a claim changes no indexed
/// column, and `sessions` keeps room on its pages (migration 0013), so PostgreSQL updates the
/// row on its own page without writing the table's indexes again. On full pages every claimed
/// row moved to another page, with an entry in each of the five indexes.
#[tokio::test]
async fn claims_leave_every_session_on_its_page() {
    use onmemos_core::ports::Database;

    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let db = SqlDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open PostgreSQL: {e}"));
    let t0 =
        chrono::DateTime::from_timestamp_millis(1_800_000_000_000).unwrap_or_else(|| panic!("t0"));
    let interval = chrono::Duration::seconds(10);
    let fleet = onmemos_backends::testing::seed_fleet(
        &db,
        400,
        4,
        t0,
        interval,
        chrono::Duration::seconds(60),
        "node",
    )
    .await
    .unwrap_or_else(|e| panic!("seed: {e}"));
    // Each row's page, from its physical address (`ctid` is `(page,slot)`).
    let pages = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT id, split_part(trim(both '()' from ctid::text), ',', 1) FROM sessions ORDER BY id",
        )
        .fetch_all(db.writer())
        .await
        .unwrap_or_else(|e| panic!("read pages: {e}"))
    };
    let before = pages().await;
    assert_eq!(before.len(), fleet.sessions.len());
    let now = t0 + interval;
    let claimed = db
        .sessions()
        .claim_due("replica-a", now, now + interval, 1_000)
        .await
        .unwrap_or_else(|e| panic!("claim: {e}"));
    assert_eq!(claimed.len(), fleet.sessions.len());
    let after = pages().await;
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert_eq!(
        moved,
        0,
        "{moved} of {} claimed sessions moved to another page",
        before.len()
    );
}
