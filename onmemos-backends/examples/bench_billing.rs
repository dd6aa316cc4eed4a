//! Session-ticks per second: running sessions billed by 1, 2 or 4 monitor replicas (separate
//! `onmemos-billing-replica` processes) over one database, next to a bare baseline in the same
//! run — one batched `UPDATE` of as many rows per statement as a billing batch has sessions,
//! from as many workers as there are replicas, each on its own rows, one commit per batch.
//!
//! `bench_billing <database-url> <sessions> <ticks> <replicas…>` (`scripts/bench-billing.sh`
//! runs it on SQLite and PostgreSQL). `BENCH_SESSIONS_PER_OWNER` sets how many sessions share an
//! owner and its workspace (10); `ONMEMOS_BILLING_STORAGE` gives the replicas local storage
//! (see `onmemos-billing-replica`). The replica binary is looked up beside this example's
//! directory (`target/release/onmemos-billing-replica`).

use std::process::Stdio;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use onmemos_backends::db::SqlDatabase;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const BATCH: usize = 1000;

struct Replica {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    fn spawn(url: &str, node: &str) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        let bin = exe
            .parent()
            .and_then(|examples| examples.parent())
            .map(|dir| dir.join("onmemos-billing-replica"))
            .unwrap_or_else(|| panic!("no target directory"));
        let mut child = Command::new(&bin)
            .args([url, node, &BATCH.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
        Self {
            _child: child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        }
    }

    async fn call(&mut self, command: &str) -> String {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.lines
            .next_line()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a replica ended"))
    }
}

/// Rows per second of the bare baseline: `workers` tasks, each updating its own `rows / workers`
/// rows in statements of `BATCH` rows, one commit per statement, `rounds` times over.
async fn bare(db: &SqlDatabase, rows: usize, workers: usize, rounds: usize) -> f64 {
    let pg = db.dialect() == onmemos_backends::db::Dialect::Postgres;
    sqlx::query("DROP TABLE IF EXISTS bench_rows")
        .execute(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("CREATE TABLE bench_rows (id BIGINT PRIMARY KEY, debits BIGINT NOT NULL)")
        .execute(db.writer())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for chunk in (0..rows as i64).collect::<Vec<_>>().chunks(5000) {
        let ids = serde_json::to_string(chunk).unwrap_or_default();
        let sql = if pg {
            "INSERT INTO bench_rows SELECT value::bigint, 0 FROM json_array_elements_text($1::json)"
        } else {
            "INSERT INTO bench_rows SELECT value, 0 FROM json_each($1)"
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ids)
            .execute(db.writer())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let update = if pg {
        "UPDATE bench_rows SET debits = debits + r.amount
         FROM jsonb_to_recordset($1::jsonb) AS r(id BIGINT, amount BIGINT) WHERE bench_rows.id = r.id"
    } else {
        "UPDATE bench_rows SET debits = debits + r.amount
         FROM (SELECT value ->> 'id' AS id, value ->> 'amount' AS amount FROM json_each($1)) AS r
         WHERE bench_rows.id = r.id"
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let pool = db.writer().clone();
            tokio::spawn(async move {
                let mine: Vec<i64> = (0..rows as i64)
                    .filter(|i| *i as usize % workers == w)
                    .collect();
                for _ in 0..rounds {
                    for chunk in mine.chunks(BATCH) {
                        let body: Vec<serde_json::Value> = chunk
                            .iter()
                            .map(|id| serde_json::json!({ "id": id, "amount": 7 }))
                            .collect();
                        sqlx::query(sqlx::AssertSqlSafe(update))
                            .bind(serde_json::Value::Array(body).to_string())
                            .execute(&pool)
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    (rows * rounds) as f64 / started.elapsed().as_secs_f64()
}

/// Runs `read` while another task writes one row again and again through the writer pool;
/// returns what `read` answered, the longest write in milliseconds, and how long `read` took.
async fn while_writing<T>(
    db: &SqlDatabase,
    read: impl std::future::Future<Output = T>,
) -> (T, f64, f64) {
    let writer = db.writer().clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let writes = tokio::spawn(async move {
        let mut longest = std::time::Duration::ZERO;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let started = Instant::now();
            sqlx::query(
                "UPDATE sessions SET warned = warned WHERE id = (SELECT MIN(id) FROM sessions)",
            )
            .execute(&writer)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
            longest = longest.max(started.elapsed());
        }
        longest
    });
    let started = Instant::now();
    let answer = read.await;
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let longest = writes.await.unwrap_or_default();
    (
        answer,
        longest.as_secs_f64() * 1000.0,
        took.as_secs_f64() * 1000.0,
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| panic!("usage: bench_billing <url> <sessions> <ticks> <replicas…>"));
    let sessions: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let ticks: i64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut counts: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    if counts.is_empty() {
        counts = vec![1, 2, 4];
    }
    let db = SqlDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    let name = match std::env::var("ONMEMOS_BILLING_STORAGE") {
        Ok(storage) => format!(
            "{} with storage {}",
            onmemos_core::ports::Database::capabilities(&db).name,
            storage.split("://").next().unwrap_or_default()
        ),
        Err(_) => onmemos_core::ports::Database::capabilities(&db)
            .name
            .to_string(),
    };
    let t0 = Utc
        .with_ymd_and_hms(2026, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default();
    // Sessions per owner (each owner has one workspace): 10 unless told.
    let per_owner: usize = std::env::var("BENCH_SESSIONS_PER_OWNER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut seeder = Replica::spawn(&url, "seed");
    let seeded = seeder
        .call(&format!(
            "seed {sessions} {per_owner} {}",
            t0.timestamp_millis()
        ))
        .await;
    assert_eq!(seeded, format!("seeded {sessions}"));
    drop(seeder);
    let mut k = 0i64;
    for &n in &counts {
        let mut replicas: Vec<Replica> = (0..n)
            .map(|i| Replica::spawn(&url, &format!("replica-{i}")))
            .collect();
        // On PostgreSQL, sample what the database's connections wait for while the replicas
        // bill: the share of busy connections waiting on a lock held by another transaction.
        let sampler = (db.dialect() == onmemos_backends::db::Dialect::Postgres).then(|| {
            let pool = db.writer().clone();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            let task = tokio::spawn(async move {
                let (mut busy, mut waiting) = (0i64, 0i64);
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(row) = sqlx::query(
                        "SELECT CAST(COUNT(*) FILTER (WHERE state = 'active') AS BIGINT) AS busy,
                                CAST(COUNT(*) FILTER (WHERE wait_event_type = 'Lock') AS BIGINT) AS waiting
                         FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    )
                    .fetch_one(&pool)
                    .await
                    {
                        use sqlx::Row;
                        busy += row.get::<i64, _>("busy");
                        waiting += row.get::<i64, _>("waiting");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                (busy, waiting)
            });
            (stop, task)
        });
        let started = Instant::now();
        let mut billed = 0u64;
        for _ in 0..ticks {
            k += 1;
            let at = (t0 + Duration::seconds(10 * k)).timestamp_millis();
            let command = format!("tick {at}");
            let answers =
                futures::future::join_all(replicas.iter_mut().map(|r| r.call(&command))).await;
            for a in answers {
                let words: Vec<&str> = a.split_whitespace().collect();
                match words.as_slice() {
                    ["ticked", t, "errors", "0", ..] => billed += t.parse::<u64>().unwrap_or(0),
                    _ => panic!("a tick failed: {a}"),
                }
            }
        }
        let rate = billed as f64 / started.elapsed().as_secs_f64();
        let waits = match sampler {
            Some((stop, task)) => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let (busy, waiting) = task.await.unwrap_or((0, 0));
                format!(
                    "; lock waits {:.1} % of busy connection samples ({waiting}/{busy})",
                    100.0 * waiting as f64 / busy.max(1) as f64
                )
            }
            None => String::new(),
        };
        assert_eq!(
            billed,
            sessions as u64 * ticks as u64,
            "every session every tick"
        );
        let baseline = bare(&db, sessions, n, ticks as usize).await;
        println!(
            "{name}, {sessions} sessions, {n} replica(s): {rate:.0} session-ticks/s; bare batched UPDATE {baseline:.0} rows/s; ratio {:.2}{waits}",
            rate / baseline
        );
    }
    // What a monitor asks after each of its passes: when the next session is due.
    let sessions_repo = onmemos_core::ports::Database::sessions(&db);
    let (started, mut calls) = (Instant::now(), 0u32);
    while started.elapsed() < std::time::Duration::from_secs(2) {
        sessions_repo
            .next_due()
            .await
            .unwrap_or_else(|e| panic!("next_due: {e}"));
        calls += 1;
    }
    println!(
        "{name}, {sessions} sessions: when the next one is due (asked after every monitor pass) {:.3} ms a call",
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(calls)
    );
    // The sweep's read of every unfinished session: through the port (ids and statuses, from
    // the readers) and as it was (whole records through the writer pool), each while writes
    // go on: the longest a write waited.
    let through_port = async {
        let unfinished = sessions_repo
            .unfinished_statuses(None)
            .await
            .unwrap_or_else(|e| panic!("unfinished: {e}"));
        unfinished.len()
    };
    let (read, waited, ms) = while_writing(&db, through_port).await;
    let writer = db.writer().clone();
    let through_writer = async move {
        sqlx::query("SELECT * FROM sessions WHERE status IN ('pending', 'starting', 'running', 'stopping') ORDER BY id")
            .fetch_all(&writer)
            .await
            .unwrap_or_else(|e| panic!("unfinished: {e}"))
            .len()
    };
    let (_, waited_before, ms_before) = while_writing(&db, through_writer).await;
    println!(
        "{name}, {sessions} sessions: the sweep's read of {read} unfinished sessions {ms:.0} ms, the longest write meanwhile {waited:.1} ms (whole records through the writer: {ms_before:.0} ms, {waited_before:.1} ms)"
    );
    let r = onmemos_core::ledger::reconcile(onmemos_core::ports::Database::ledger(&db))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.is_consistent(), "{r:?}");
}
