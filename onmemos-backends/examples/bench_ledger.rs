//! Debits per second through the ledger against a bare guarded-UPDATE loop on the same
//! database, connection pool and settings, in the same run. Prints the ratios.
//!
//! `cargo run --release -p onmemos-backends --all-features --example bench_ledger -- <url> [n] [callers…]`
//! (`scripts/bench-ledger.sh` runs it on SQLite and on a throwaway PostgreSQL.)
//!
//! For each number of concurrent callers (default: 1 and 64), every caller debits its own
//! account: in the baseline, a guarded `UPDATE … WHERE credits - debits >= amount` on its own
//! row, one transaction per debit; through the ledger, a hold on its own user (the guarded
//! debit, grant allocation, transfer, system account), and a whole hold + post cycle.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use onmemos_backends::db::SqlDatabase;
use onmemos_core::id::UserId;
use onmemos_core::model::{GrantSource, LedgerOp, Role, TransferId, User};
use onmemos_core::ports::Database;

/// Holds per call of the batch API.
const BATCH: usize = 64;

fn id(text: String) -> TransferId {
    TransferId::new(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `per_caller` steps in each of `callers` concurrent tasks; returns steps per second.
async fn rate<F, Fut>(callers: usize, per_caller: usize, step: F) -> f64
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let steps: Vec<Fut> = (0..per_caller).map(|i| step(c, i)).collect();
            tokio::spawn(async move {
                for s in steps {
                    s.await;
                }
            })
        })
        .collect();
    for t in join_all(tasks).await {
        t.unwrap_or_else(|e| panic!("{e}"));
    }
    (callers * per_caller) as f64 / started.elapsed().as_secs_f64()
}

async fn ledger(db: &SqlDatabase, op: LedgerOp, now: DateTime<Utc>) {
    db.ledger()
        .execute(&op, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn user_with_credit(db: &SqlDatabase, now: DateTime<Utc>) -> UserId {
    let user = User {
        id: UserId::new(),
        email: format!("{}@bench.test", UserId::new()),
        name: None,
        role: Role::Member,
        created_at: now,
    };
    db.users()
        .insert(&user, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let grant = LedgerOp::Grant {
        id: TransferId::random("grant"),
        user: user.id,
        amount: 1_000_000_000_000,
        source: GrantSource::Purchase,
        priority: 0,
        expires_at: None,
        reference: None,
    };
    ledger(db, grant, now).await;
    user.id
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "sqlite::memory:".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5_000);
    let mut callers: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    if callers.is_empty() {
        callers = vec![1, 64];
    }
    let db = Arc::new(
        SqlDatabase::open(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}")),
    );
    let now = Utc::now();
    let name = db.capabilities().name;
    sqlx::query("CREATE TABLE bench_accounts (id BIGINT PRIMARY KEY, credits BIGINT NOT NULL, debits BIGINT NOT NULL)")
        .execute(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let max_callers = callers.iter().copied().max().unwrap_or(1);
    let mut users = Vec::new();
    for c in 0..max_callers {
        sqlx::query("INSERT INTO bench_accounts VALUES ($1, 1000000000000, 0)")
            .bind(c as i64)
            .execute(db.writer())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        users.push(user_with_credit(&db, now).await);
    }
    let users = Arc::new(users);

    for (round, &c) in callers.iter().enumerate() {
        let per = (n / c).max(1);
        let bare = rate(c, per, |caller, _| {
            let db = db.clone();
            async move {
                let done = sqlx::query("UPDATE bench_accounts SET debits = debits + $2 WHERE id = $1 AND credits - debits >= $2")
                    .bind(caller as i64)
                    .bind(7_i64)
                    .execute(db.writer())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(done.rows_affected(), 1);
            }
        })
        .await;
        let before = db.group_commit_stats();
        let holds = rate(c, per, |caller, i| {
            let (db, users) = (db.clone(), users.clone());
            async move {
                let op = LedgerOp::Hold {
                    id: id(format!("r{round}-hold-{caller}-{i}")),
                    user: users[caller],
                    amount: 7,
                    timeout_at: now + Duration::hours(1),
                    reference: None,
                };
                ledger(&db, op, now).await;
            }
        })
        .await;
        let after = db.group_commit_stats();
        // The batch API: each call places BATCH holds.
        let calls = per.div_ceil(BATCH);
        let batched = rate(c, calls, |caller, i| {
            let (db, users) = (db.clone(), users.clone());
            async move {
                let ops: Vec<LedgerOp> = (0..BATCH)
                    .map(|j| LedgerOp::Hold {
                        id: id(format!("r{round}-batch-{caller}-{i}-{j}")),
                        user: users[caller],
                        amount: 7,
                        timeout_at: now + Duration::hours(1),
                        reference: None,
                    })
                    .collect();
                for outcome in db
                    .ledger()
                    .apply_batch(&ops, now)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                {
                    outcome.unwrap_or_else(|e| panic!("{e}"));
                }
            }
        })
        .await
            * BATCH as f64;
        let cycles = rate(c, per, |caller, i| {
            let (db, users) = (db.clone(), users.clone());
            async move {
                let hold = id(format!("r{round}-cycle-hold-{caller}-{i}"));
                let op = LedgerOp::Hold {
                    id: hold.clone(),
                    user: users[caller],
                    amount: 7,
                    timeout_at: now + Duration::hours(1),
                    reference: None,
                };
                ledger(&db, op, now).await;
                let post = LedgerOp::Post {
                    id: id(format!("r{round}-cycle-post-{caller}-{i}")),
                    hold,
                    amount: 5,
                };
                ledger(&db, post, now).await;
            }
        })
        .await;
        let per_commit = (after.operations - before.operations) as f64
            / (after.commits - before.commits).max(1) as f64;
        println!(
            "{name}, {c} caller(s): bare guarded UPDATE {bare:.0}/s; ledger hold {holds:.0}/s (ratio {:.2}, {per_commit:.1} per commit); holds through apply_batch ({BATCH} per call) {batched:.0}/s (ratio {:.2}); hold+post cycle {cycles:.0}/s (ratio {:.2}); n={}",
            holds / bare,
            batched / bare,
            cycles / bare,
            c * per
        );
    }

    let r = onmemos_core::ledger::reconcile(db.ledger())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.is_consistent(), "{r:?}");
}
