//! Billing at scale, with real replicas: `onmemos-billing-replica` processes over one
//! PostgreSQL, on a clock they are told.
//!
//! - 20,000 sessions through 30 ticks with two replicas: every tick is charged exactly once,
//!   every charge is `cost_of(rate, running time)` to the micro-credit, the ledger reconciles
//!   with zero drift, no batch fails (no deadlock), no balance goes negative.
//! - A replica killed (SIGKILL) in the middle of its batches: nothing it committed is lost,
//!   nothing is charged twice, and the survivors bill its sessions exactly from there.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "testing"))]

use std::collections::HashMap;
use std::process::Stdio;

use chrono::{DateTime, Duration, TimeZone, Utc};
use onmemos_backends::db::SqlDatabase;
use onmemos_backends::testing::fresh_postgres_url;
use onmemos_core::model::cost_of;
use onmemos_core::ports::Database;
use sqlx::Row;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const INTERVAL_MS: i64 = 10_000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A replica process and its command pipe.
struct Replica {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    fn spawn(url: &str, node: &str, batch: u32) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_onmemos-billing-replica"))
            .args([url, node, &batch.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn a replica: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        }
    }

    async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("write to a replica: {e}"));
    }

    async fn answer(&mut self) -> String {
        self.lines
            .next_line()
            .await
            .unwrap_or_else(|e| panic!("read a replica: {e}"))
            .unwrap_or_else(|| panic!("a replica ended"))
    }

    /// `tick` answered: (sessions ticked, errors).
    async fn ticked(&mut self) -> (u64, u64) {
        let answer = self.answer().await;
        let words: Vec<&str> = answer.split_whitespace().collect();
        match words.as_slice() {
            ["ticked", n, "errors", e, "micros", _] => (
                n.parse().unwrap_or_else(|e| panic!("{e}")),
                e.parse().unwrap_or_else(|e| panic!("{e}")),
            ),
            _ => panic!("unexpected answer {answer:?}"),
        }
    }
}

/// A fresh PostgreSQL database with `sessions` running sessions (`per_user` to an owner) and
/// two replicas over it billing in batches of `batch`: its URL, a handle, the replicas.
async fn fleet(
    sessions: usize,
    per_user: usize,
    batch: u32,
) -> Option<(String, SqlDatabase, Replica, Replica)> {
    let url = fresh_postgres_url().await?;
    let db = SqlDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut a = Replica::spawn(&url, "node-a", batch);
    let b = Replica::spawn(&url, "node-b", batch);
    a.send(&format!("seed {sessions} {per_user} {}", at_tick(0)))
        .await;
    assert_eq!(a.answer().await, format!("seeded {sessions}"));
    Some((url, db, a, b))
}

/// Both replicas tick at tick `k`, with no batch failing; how many sessions each ticked.
async fn tick_both(a: &mut Replica, b: &mut Replica, k: i64) -> (u64, u64) {
    a.send(&format!("tick {}", at_tick(k))).await;
    b.send(&format!("tick {}", at_tick(k))).await;
    let ((na, ea), (nb, eb)) = tokio::join!(a.ticked(), b.ticked());
    assert_eq!((ea, eb), (0, 0), "tick {k}: no batch failed");
    (na, nb)
}

/// Every transfer stored, by id, with its amount.
async fn transfers(db: &SqlDatabase) -> HashMap<String, i64> {
    sqlx::query("SELECT id, amount FROM ledger_transfers")
        .fetch_all(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| (r.get("id"), r.get("amount")))
        .collect()
}

fn at_tick(k: i64) -> i64 {
    (t0() + Duration::milliseconds(k * INTERVAL_MS)).timestamp_millis()
}

/// Every session is charged exactly for its running time: its cost is `cost_of(rate,
/// billed_ms)`, `billed_ms` is `elapsed_ms`, and its posts (one per billing step, ids unique
/// by construction) add up to its cost. With `every_tick`, it had one step per check
/// interval; else (a session a killed replica held skips the interval its lease covered, and
/// the next step pays for both) one step per recorded tick. The ledger reconciles and no
/// balance is negative.
async fn assert_exact(db: &SqlDatabase, sessions: usize, elapsed_ms: i64, every_tick: bool) {
    let rows = sqlx::query(
        "SELECT id, rate_micros, cost_micros, billed_ms, tick FROM sessions WHERE status = 'running'",
    )
    .fetch_all(db.writer())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), sessions, "every session still runs");
    let posts = sqlx::query("SELECT id, amount FROM ledger_transfers WHERE kind = 'post'")
        .fetch_all(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut posted: HashMap<String, (i64, u64)> = HashMap::new();
    for p in &posts {
        let id: String = p.get("id");
        let session = id.split('.').next().unwrap_or_default().to_owned();
        let e = posted.entry(session).or_default();
        e.0 += p.get::<i64, _>("amount");
        e.1 += 1;
    }
    let ticks = u64::try_from(elapsed_ms / INTERVAL_MS).unwrap_or_default();
    for r in &rows {
        let id: String = r.get("id");
        let rate: i64 = r.get("rate_micros");
        let cost: i64 = r.get("cost_micros");
        let billed: i64 = r.get("billed_ms");
        let tick: i64 = r.get("tick");
        assert_eq!(billed, elapsed_ms, "{id} is billed up to now");
        assert_eq!(
            cost,
            cost_of(rate, elapsed_ms),
            "{id} costs exactly its running time"
        );
        let (sum, count) = posted.get(&id).copied().unwrap_or_default();
        assert_eq!(sum, cost, "the posts of {id} add up to its cost");
        assert_eq!(
            count,
            u64::try_from(tick).unwrap_or_default(),
            "{id} was charged once a step"
        );
        if every_tick {
            assert_eq!(count, ticks, "{id} was charged once a tick");
        } else {
            assert!(count + 1 >= ticks && count <= ticks, "{id}: {count} steps");
        }
    }
    let r = onmemos_core::ledger::reconcile(db.ledger())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.is_consistent(), "the ledger drifted: {r:?}");
    let negative: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ledger_accounts
         WHERE kind = 'user' AND credits_posted - debits_posted - debits_pending < 0",
    )
    .fetch_one(db.writer())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(negative, 0, "no balance is negative");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_sessions_two_replicas_thirty_ticks_on_postgres() {
    const SESSIONS: usize = 20_000;
    let Some((_, db, mut a, mut b)) = fleet(SESSIONS, 10, 1000).await else {
        return;
    };
    let mut shares = (0, 0);
    for k in 1..=30 {
        let (na, nb) = tick_both(&mut a, &mut b, k).await;
        assert_eq!(na + nb, SESSIONS as u64, "tick {k}: every session once");
        shares = (shares.0 + na, shares.1 + nb);
    }
    assert!(
        shares.0 > 0 && shares.1 > 0,
        "both replicas billed: {shares:?}"
    );
    assert_exact(&db, SESSIONS, 30 * INTERVAL_MS, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_in_the_middle_of_its_batches_loses_nothing_and_charges_nothing_twice() {
    const SESSIONS: usize = 6_000;
    let Some((url, db, mut a, mut b)) = fleet(SESSIONS, 5, 200).await else {
        return;
    };
    for k in 1..=2 {
        tick_both(&mut a, &mut b, k).await;
    }
    // Tick 3: A alone starts, and is killed as soon as its first batch is in (it has 30 to
    // go through); then B ticks what is not leased.
    a.send(&format!("tick {}", at_tick(3))).await;
    // Some of its batches are in, and it holds the next one.
    let progress = "SELECT COUNT(*) FILTER (WHERE tick >= 3) AS done,
                           COUNT(*) FILTER (WHERE tick < 3 AND lease_holder = 'node-a') AS held
                    FROM sessions";
    loop {
        let row = sqlx::query(progress)
            .fetch_one(db.writer())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if row.get::<i64, _>("done") > 0 && row.get::<i64, _>("held") > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    a.child
        .start_kill()
        .unwrap_or_else(|e| panic!("kill the replica: {e}"));
    let _ = a.child.wait().await;
    b.send(&format!("tick {}", at_tick(3))).await;
    let (_, eb) = b.ticked().await;
    assert_eq!(eb, 0);
    let transfers_then = transfers(&db).await;
    let stranded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE tick < 3")
        .fetch_one(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        stranded > 0,
        "the kill came before the killed replica finished its share"
    );

    // A comes back; the sessions it held are due again once its leases run out.
    let mut a = Replica::spawn(&url, "node-a", 200);
    for k in 4..=8 {
        let (na, nb) = tick_both(&mut a, &mut b, k).await;
        assert_eq!(na + nb, SESSIONS as u64, "tick {k}: every session once");
    }
    // Nothing committed before the kill was lost or changed.
    let now = transfers(&db).await;
    for (id, amount) in &transfers_then {
        assert_eq!(now.get(id), Some(amount), "transfer {id} kept");
    }
    assert_exact(&db, SESSIONS, 8 * INTERVAL_MS, false).await;
}
