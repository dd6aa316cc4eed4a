//! The `Database` conformance suite on SQLite: each check gets a fresh database file.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use onmemos_backends::db::SqlDatabase;
use onmemos_core::ports::Database;

async fn fresh() -> Option<Arc<dyn Database>> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.keep().join("conformance.db");
    let db = SqlDatabase::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap_or_else(|e| panic!("open SQLite: {e}"));
    Some(Arc::new(db))
}

onmemos_core::database_conformance!(|| fresh());

#[tokio::test]
async fn in_memory_database_also_conforms() {
    let db: Arc<dyn Database> = Arc::new(
        SqlDatabase::open("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("open: {e}")),
    );
    onmemos_core::testing::database::workspaces_crud_and_owner_scoping(db.clone()).await;
    onmemos_core::testing::database::templates_visibility_filters_and_builtins(db).await;
}

#[tokio::test]
async fn reopening_keeps_data_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("re.db").display());
    let db = SqlDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(db.writer())
        .await
        .unwrap_or_default();
    assert_eq!(mode, "wal");
    onmemos_core::testing::database::users_round_trip_and_unique_email(Arc::new(db.clone())).await;
    let before = db.users().count().await.unwrap_or_default();
    db.close().await;
    let again = SqlDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("reopen: {e}"));
    assert_eq!(again.users().count().await.ok(), Some(before));
    assert!(before > 0);
}

#[tokio::test]
async fn unknown_scheme_is_a_configuration_error() {
    let err = onmemos_backends::db::connect("mysql://x").await.err();
    assert_eq!(
        err.as_ref().map(|e| e.kind()),
        Some(onmemos_core::ErrorKind::Configuration)
    );
    assert!(
        err.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("mysql")
    );
}

/// Whether every page of the database is in its main file (all of the WAL checkpointed):
/// the file holds `page_count` pages of `page_size` bytes.
async fn checkpointed(db: &SqlDatabase, path: &std::path::Path) -> bool {
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let on_disk = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    on_disk >= (pages * page_size) as u64
}

/// Writes a few dozen small transactions (far below SQLite's own 1,000-page checkpoint) and
/// waits a little: whether they reached the main file says whether anything checkpointed.
async fn write_and_wait(checkpoint_interval_ms: u64) -> bool {
    use onmemos_backends::db::sqlite::{SqliteConfig, connect};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("ckpt.db");
    let config = SqliteConfig {
        checkpoint_interval_ms,
        ..SqliteConfig::new(format!("sqlite://{}", path.display()))
    };
    let db = connect(&config)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    for i in 0..30 {
        let user = onmemos_core::model::User {
            id: onmemos_core::id::UserId::new(),
            email: format!("u{i}@ckpt.test"),
            name: None,
            role: onmemos_core::model::Role::Member,
            created_at: chrono::Utc::now(),
        };
        db.users()
            .insert(&user, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    checkpointed(&db, &path).await
}

#[tokio::test]
async fn background_checkpoints_move_the_wal_into_the_database_file() {
    assert!(
        write_and_wait(50).await,
        "with background checkpoints every 50 ms, the writes must reach the main file"
    );
    assert!(
        !write_and_wait(0).await,
        "without them, SQLite checkpoints only at 1,000 pages: the writes stay in the WAL"
    );
}

/// Several processes opening one new database at once (a server starting while an admin
/// command runs) all get it: the migrations are applied once, and nobody fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_new_database_from_many_places_at_once_migrates_it_once() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("race.db").display());
        let opened = futures::future::join_all((0..4).map(|_| SqlDatabase::open(&url))).await;
        for db in opened {
            db.unwrap_or_else(|e| panic!("round {round}: a concurrent open failed: {e}"));
        }
    }
}

/// A database file in `dir` with `sessions` running sessions of as many owners (see
/// `seed_fleet`), seeded at the moment it answers.
async fn seeded_file(
    dir: &tempfile::TempDir,
    sessions: usize,
) -> (
    SqlDatabase,
    onmemos_backends::testing::Fleet,
    chrono::DateTime<chrono::Utc>,
) {
    let db = SqlDatabase::open(&format!(
        "sqlite://{}",
        dir.path().join("db.sqlite").display()
    ))
    .await
    .unwrap_or_else(|e| panic!("open: {e}"));
    let t0 =
        chrono::DateTime::from_timestamp_millis(1_800_000_000_000).unwrap_or_else(|| panic!("t0"));
    let fleet = onmemos_backends::testing::seed_fleet(
        &db,
        sessions,
        1,
        t0,
        chrono::Duration::seconds(10),
        chrono::Duration::seconds(60),
        "node",
    )
    .await
    .unwrap_or_else(|e| panic!("seed: {e}"));
    (db, fleet, t0)
}

/// Session reads on the calling thread (the API's hot path) answer what sqlx would: the
/// owner's record as last committed, nothing for anyone else, and a corrupt row as an error
/// naming its column.
#[tokio::test]
async fn session_reads_on_the_calling_thread_see_each_commit_and_name_corrupt_rows() {
    use onmemos_core::ports::Database;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (db, fleet, _) = seeded_file(&dir, 2).await;
    let (record, owner, stranger) = (&fleet.sessions[0], fleet.users[0], fleet.users[1]);
    let id = record.session.id;
    let get = |user| db.sessions().get(user, id);
    let before = db.inline_reads();
    assert_eq!(
        get(owner).await.ok().flatten(),
        Some(record.session.clone())
    );
    assert_eq!(get(stranger).await.ok().flatten(), None);
    assert_eq!(
        db.inline_reads(),
        before + 2,
        "not read on the calling thread"
    );

    let mut next = record.clone();
    next.version += 1;
    next.session.cost_micros += 5;
    assert_eq!(db.sessions().update(&next).await.ok(), Some(true));
    assert_eq!(get(owner).await.ok().flatten(), Some(next.session.clone()));

    sqlx::query("UPDATE sessions SET stop_reason = 'sideways' WHERE id = $1")
        .bind(id.to_string())
        .execute(db.writer())
        .await
        .unwrap_or_else(|e| panic!("corrupt: {e}"));
    let error = get(owner).await.err().map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("sessions.stop_reason")),
        "{error:?}"
    );
}

/// A ledger batch loads what it decides on (holds, reservations, accounts, grants, the
/// transfers its ids already name) on the calling thread, inside its write transaction: it
/// sees each earlier commit — a hold settled once is refused a second settlement, an id
/// already stored answers as a replay — as it would through its own connection.
#[tokio::test]
async fn ledger_batches_load_on_the_calling_thread_and_see_each_commit() {
    use onmemos_core::model::{LedgerOp, TransferId};
    use onmemos_core::ports::Database;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (db, fleet, t0) = seeded_file(&dir, 1).await;
    let (record, owner) = (&fleet.sessions[0], fleet.users[0]);
    let hold = record
        .hold
        .clone()
        .unwrap_or_else(|| panic!("a seeded hold"));
    let id = |s: &str| TransferId::new(s.to_owned()).unwrap_or_else(|e| panic!("{e}"));
    let now = t0 + chrono::Duration::seconds(10);
    let balance = || async {
        db.ledger()
            .balance(owner)
            .await
            .unwrap_or_else(|e| panic!("balance: {e}"))
    };
    let before_balance = balance().await;
    let ops = [
        LedgerOp::Post {
            id: id("lite.settle.1"),
            hold: hold.clone(),
            amount: 7,
        },
        LedgerOp::Hold {
            id: id("lite.hold.2"),
            user: owner,
            amount: 11,
            timeout_at: now + chrono::Duration::seconds(120),
            reference: None,
        },
    ];
    let reads = db.inline_reads();
    let first = db
        .ledger()
        .apply_batch(&ops, now)
        .await
        .unwrap_or_else(|e| panic!("first batch: {e}"));
    assert!(
        db.inline_reads() >= reads + 5,
        "the batch's loads did not run on the calling thread ({} reads)",
        db.inline_reads() - reads
    );
    let first: Vec<_> = first
        .into_iter()
        .map(|o| o.unwrap_or_else(|e| panic!("refused: {e}")))
        .collect();
    assert_eq!(first[0].amount, 7);
    assert_eq!(first[1].amount, 11);
    let after_balance = balance().await;
    assert_ne!(
        after_balance, before_balance,
        "the first batch changed nothing"
    );

    // The same batch again: both ids are stored, so both answer as replays, unchanged.
    let again = db
        .ledger()
        .apply_batch(&ops, now)
        .await
        .unwrap_or_else(|e| panic!("replayed batch: {e}"));
    let again: Vec<_> = again
        .into_iter()
        .map(|o| o.unwrap_or_else(|e| panic!("a replay refused: {e}")))
        .collect();
    assert_eq!(again, first, "replays answer the stored transfers");
    assert_eq!(
        balance().await,
        after_balance,
        "a replay changed the balance"
    );

    // Another settlement of the settled hold, under a new id: the batch sees the first one.
    let second = db
        .ledger()
        .apply_batch(
            &[LedgerOp::Post {
                id: id("lite.settle.again"),
                hold,
                amount: 1,
            }],
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("second settlement: {e}"));
    assert!(
        matches!(&second[..], [Err(e)] if e.kind() == onmemos_core::ErrorKind::Conflict),
        "a settled hold was settled again: {second:?}"
    );
    assert_eq!(balance().await, after_balance);
}
