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

/// A ledger batch runs on SQLite's own write connection (every row bound, no sqlx), and sees
/// each earlier commit there: a hold settled once is refused a second settlement, an id
/// already stored answers as a replay.
#[tokio::test]
async fn ledger_batches_run_on_the_write_connection_and_see_each_commit() {
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
    let writes = db.inline_writes();
    let first = db
        .ledger()
        .apply_batch(&ops, now)
        .await
        .unwrap_or_else(|e| panic!("first batch: {e}"));
    assert_eq!(
        db.inline_writes(),
        writes + 1,
        "the batch did not run on the write connection"
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

/// The migration that stores holds and reservations in key order moves every row: run again
/// on a database whose sessions hold credit, it leaves each hold and reservation as it was,
/// and the ledger goes on settling them.
#[tokio::test]
async fn clustering_the_holds_moves_every_hold_and_reservation() {
    use onmemos_core::model::LedgerOp;
    use onmemos_core::model::TransferId;
    use sqlx::Row;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (db, fleet, t0) = seeded_file(&dir, 20).await;
    let dump = || async {
        let holds = sqlx::query("SELECT * FROM ledger_holds ORDER BY id")
            .fetch_all(db.writer())
            .await
            .unwrap_or_else(|e| panic!("holds: {e}"));
        let allocations =
            sqlx::query("SELECT * FROM ledger_hold_allocations ORDER BY hold_id, position")
                .fetch_all(db.writer())
                .await
                .unwrap_or_else(|e| panic!("reservations: {e}"));
        let text = |r: &sqlx::any::AnyRow, c: &str| r.get::<Option<String>, _>(c);
        let num = |r: &sqlx::any::AnyRow, c: &str| r.get::<Option<i64>, _>(c);
        let holds: Vec<_> = holds
            .iter()
            .map(|r| {
                (
                    text(r, "id"),
                    num(r, "seq"),
                    text(r, "user_id"),
                    num(r, "amount"),
                    num(r, "timeout_at"),
                    num(r, "pending"),
                )
            })
            .collect();
        let allocations: Vec<_> = allocations
            .iter()
            .map(|r| {
                (
                    text(r, "hold_id"),
                    num(r, "position"),
                    text(r, "grant_id"),
                    num(r, "amount"),
                    num(r, "taken"),
                )
            })
            .collect();
        (holds, allocations)
    };
    // One hold settled, so a reservation has paid something.
    let hold = fleet.sessions[0]
        .hold
        .clone()
        .unwrap_or_else(|| panic!("a hold"));
    let settle = LedgerOp::Post {
        id: TransferId::new("clustered.settle".to_owned()).unwrap_or_else(|e| panic!("{e}")),
        hold,
        amount: 3,
    };
    db.ledger()
        .execute(&settle, t0)
        .await
        .unwrap_or_else(|e| panic!("settle: {e}"));
    let before = dump().await;
    assert_eq!(before.0.len(), 20, "{before:?}");
    assert!(
        before.1.iter().any(|a| a.4.is_some()),
        "nothing paid: {before:?}"
    );

    sqlx::raw_sql(include_str!(
        "../migrations/sqlite/0012_ledger_holds_clustered.sql"
    ))
    .execute(db.writer())
    .await
    .unwrap_or_else(|e| panic!("migrate again: {e}"));
    assert_eq!(dump().await, before, "the move changed a row");

    // The moved holds are the ledger's: a pending one settles, the settled one refuses.
    let post = |id: &str, session: usize| LedgerOp::Post {
        id: TransferId::new(id.to_owned()).unwrap_or_else(|e| panic!("{e}")),
        hold: fleet.sessions[session]
            .hold
            .clone()
            .unwrap_or_else(|| panic!("a hold")),
        amount: 2,
    };
    let next = db.ledger().execute(&post("clustered.next", 1), t0).await;
    assert!(next.is_ok(), "a moved hold could not be settled: {next:?}");
    let again = db.ledger().execute(&post("clustered.again", 0), t0).await;
    assert!(
        matches!(&again, Err(e) if e.kind() == onmemos_core::ErrorKind::Conflict),
        "a settled hold settled again: {again:?}"
    );
}

/// A billing pass's claim and its ticks' records and events run on SQLite's own write
/// connection, and do what the sqlx path does: the claim leases what is due once, a tick is
/// written only over the version it expects, and only a written tick's events are stored.
#[tokio::test]
async fn claims_and_ticks_run_on_the_write_connection() {
    use onmemos_core::model::SessionEventKind;
    use onmemos_core::ports::{Database, NewSessionEvent};

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (db, _, t0) = seeded_file(&dir, 3).await;
    let now = t0 + chrono::Duration::seconds(10);
    let until = now + chrono::Duration::seconds(60);
    let writes = db.inline_writes();
    let claimed = db
        .sessions()
        .claim_due("me", now, until, 2)
        .await
        .unwrap_or_else(|e| panic!("claim: {e}"));
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    assert_eq!(db.inline_writes(), writes + 1, "the claim used sqlx");
    let rest = db
        .sessions()
        .claim_due("other", now, until, 10)
        .await
        .unwrap_or_else(|e| panic!("second claim: {e}"));
    assert_eq!(
        rest.len(),
        1,
        "a leased session was claimed again: {rest:?}"
    );
    assert!(claimed.iter().all(|c| c.session.id != rest[0].session.id));

    // One tick over the stored version, one over a stale one.
    let mut fresh = claimed[0].clone();
    fresh.version += 1;
    fresh.tick += 1;
    fresh.session.cost_micros += 9;
    let mut stale = claimed[1].clone();
    stale.version += 2;
    let event = |record: &onmemos_core::model::SessionRecord| NewSessionEvent {
        session: record.session.id,
        at: now,
        kind: SessionEventKind::Charged {
            tick: record.tick,
            amount_micros: 9,
            cost_micros: record.session.cost_micros,
        },
        message: "charged".into(),
    };
    let events = [event(&fresh), event(&stale)];
    let (written, stored) = db
        .sessions()
        .record_ticks(&[fresh.clone(), stale.clone()], &events)
        .await
        .unwrap_or_else(|e| panic!("ticks: {e}"));
    assert_eq!(written, vec![true, false]);
    assert_eq!(db.inline_writes(), writes + 3, "the ticks used sqlx");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].session_id, fresh.session.id);
    let listed = db
        .sessions()
        .events(fresh.session.id, 0, 10)
        .await
        .unwrap_or_else(|e| panic!("events: {e}"));
    assert_eq!(
        listed, stored,
        "the answered events are not the stored ones"
    );
    let read = db
        .sessions()
        .record(fresh.session.id)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"))
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(read, fresh, "the tick was not stored as written");
    // Written, its lease is released: it is claimable again once due.
    let again = db
        .sessions()
        .claim_due("me", fresh.next_check_at.unwrap_or(now), until, 10)
        .await
        .unwrap_or_else(|e| panic!("third claim: {e}"));
    assert!(again.iter().any(|r| r.session.id == fresh.session.id));
}
