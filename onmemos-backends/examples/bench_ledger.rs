//! Debits per second through the ledger against a bare guarded-UPDATE loop on the same
//! database, connection pool and settings, in the same run. Prints the ratios.
//!
//! `cargo run --release -p onmemos-backends --all-features --example bench_ledger -- <url> [n]`
//! (`scripts/bench-ledger.sh` runs it on SQLite and on a throwaway PostgreSQL.)

use std::time::Instant;

use chrono::{Duration, Utc};
use onmemos_backends::db::SqlDatabase;
use onmemos_core::id::UserId;
use onmemos_core::model::{GrantSource, LedgerOp, Role, TransferId, User};
use onmemos_core::ports::Database;

fn id(prefix: &str, i: usize) -> TransferId {
    TransferId::new(format!("{prefix}-{i}")).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "sqlite::memory:".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5_000);
    let db = SqlDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    let now = Utc::now();
    let user = User {
        id: UserId::new(),
        email: "bench@example.com".into(),
        name: None,
        role: Role::Member,
        created_at: now,
    };
    db.users()
        .insert(&user, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let grant = LedgerOp::Grant {
        id: id("grant", 0),
        user: user.id,
        amount: 1_000_000_000_000,
        source: GrantSource::Purchase,
        priority: 0,
        expires_at: None,
        reference: None,
    };
    db.ledger()
        .execute(&grant, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Baseline: one guarded UPDATE per debit, each its own transaction.
    sqlx::query("CREATE TABLE bench_accounts (id BIGINT PRIMARY KEY, credits BIGINT NOT NULL, debits BIGINT NOT NULL)")
        .execute(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("INSERT INTO bench_accounts VALUES (1, 1000000000000, 0)")
        .execute(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    for _ in 0..n {
        let done = sqlx::query("UPDATE bench_accounts SET debits = debits + $2 WHERE id = $1 AND credits - debits >= $2")
            .bind(1_i64)
            .bind(7_i64)
            .execute(db.writer())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.rows_affected(), 1);
    }
    let bare = n as f64 / started.elapsed().as_secs_f64();

    // The ledger's guarded debit: a hold (guard, grant allocation, transfer, system account).
    let started = Instant::now();
    for i in 0..n {
        let op = LedgerOp::Hold {
            id: id("hold", i),
            user: user.id,
            amount: 7,
            timeout_at: now + Duration::hours(1),
            reference: None,
        };
        db.ledger()
            .execute(&op, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let holds = n as f64 / started.elapsed().as_secs_f64();

    // A whole charge cycle: hold, then post it.
    let started = Instant::now();
    for i in 0..n {
        let hold = LedgerOp::Hold {
            id: id("cycle-hold", i),
            user: user.id,
            amount: 7,
            timeout_at: now + Duration::hours(1),
            reference: None,
        };
        db.ledger()
            .execute(&hold, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let post = LedgerOp::Post {
            id: id("cycle-post", i),
            hold: id("cycle-hold", i),
            amount: 5,
        };
        db.ledger()
            .execute(&post, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let cycles = n as f64 / started.elapsed().as_secs_f64();

    let r = onmemos_core::ledger::reconcile(db.ledger())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.is_consistent(), "{r:?}");
    let name = db.capabilities().name;
    println!(
        "{name}: bare guarded UPDATE {bare:.0}/s; ledger hold {holds:.0}/s (ratio {:.2}); hold+post cycle {cycles:.0}/s (ratio {:.2}); n={n}",
        holds / bare,
        cycles / bare
    );
}
