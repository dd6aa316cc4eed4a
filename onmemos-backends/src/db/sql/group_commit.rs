//! Group commit for ledger operations: the operations that arrive while a commit is under way
//! are applied together in the next transaction, so concurrent callers share one commit (its
//! page writes and fsync) instead of queueing for one each.
//!
//! One task per database takes the queue in order. A batch of one is a single autocommit
//! statement, as it would be without the queue. A larger batch is one transaction: on SQLite,
//! a sequence of `INSERT`s on the writer connection (a refused statement rolls back alone and
//! the transaction goes on); on PostgreSQL, one call of `ledger_apply(jsonb)`, which applies
//! each operation in its own exception block and returns one row per operation — one round
//! trip for the whole batch. Every caller gets its own answer; an operation refused in a batch
//! changes nothing, exactly as when alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use onmemos_core::model::Transfer;
use onmemos_core::{Error, Result};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::Dialect;
use super::error::{SqlxResultExt, convert};
use super::ledger::{Write, apply_one, outcome_of_row, statement_outcome, transfer_json};

/// Most operations per transaction. On PostgreSQL each runs in a subtransaction, and more than
/// 64 of them in one transaction overflow the server's per-backend subtransaction cache (which
/// slows every other session's snapshots), so batches stay at 64.
const MAX_BATCH: usize = 64;

struct Job {
    write: Write,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<Transfer>>,
}

/// How the queue has been used: operations applied, and the commits they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Operations applied (whatever their outcome).
    pub operations: u64,
    /// Transactions (batches) they were applied in.
    pub commits: u64,
}

#[derive(Default)]
struct Counters {
    operations: AtomicU64,
    commits: AtomicU64,
}

/// The sending side of the queue, held by the database handle. The task ends when the last
/// handle is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Job>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("stats", &self.stats())
            .finish()
    }
}

impl GroupCommit {
    /// Starts the task that applies queued operations through `writer`.
    pub(crate) fn start(writer: AnyPool, dialect: Dialect) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(writer, dialect, jobs, counters.clone()));
        Self { queue, counters }
    }

    /// Applies `write` in the next batch and waits for its outcome.
    pub(crate) async fn submit(&self, write: Write, now: DateTime<Utc>) -> Result<Transfer> {
        let (reply, answer) = oneshot::channel();
        let job = Job { write, now, reply };
        if self.queue.send(job).is_err() {
            return Err(Error::unavailable("the ledger's commit queue has stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::unavailable("the ledger's commit queue has stopped")))
    }

    /// Operations applied and commits made so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            operations: self.counters.operations.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }
}

async fn run(
    writer: AnyPool,
    dialect: Dialect,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ops: Vec<(&Write, DateTime<Utc>)> = batch.iter().map(|j| (&j.write, j.now)).collect();
        let outcomes = match ops.as_slice() {
            [(op, now)] => vec![apply_one(&writer, op, *now).await],
            _ => match dialect {
                Dialect::Sqlite => sqlite_batch(&writer, &ops).await,
                Dialect::Postgres => postgres_batch(&writer, &ops).await,
            },
        };
        counters
            .operations
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        counters.commits.fetch_add(1, Ordering::Relaxed);
        for (job, outcome) in batch.drain(..).zip(outcomes) {
            // The caller may have gone away (its request was cancelled): nothing to tell.
            let _ = job.reply.send(outcome);
        }
    }
}

/// Every operation of a batch that could not commit gets the same transient error, so its
/// caller retries it.
fn all_failed(n: usize, e: &Error) -> Vec<Result<Transfer>> {
    (0..n)
        .map(|_| {
            Err(Error::unavailable(format!(
                "the ledger batch did not commit: {e}"
            )))
        })
        .collect()
}

/// A batch on SQLite: one `BEGIN IMMEDIATE … COMMIT` on the writer connection. A refusal
/// (a trigger's `RAISE(ABORT)`, a unique index) undoes its own statement only; any other error
/// abandons the whole batch, since SQLite may have rolled the transaction back.
async fn sqlite_batch(writer: &AnyPool, ops: &[(&Write, DateTime<Utc>)]) -> Vec<Result<Transfer>> {
    let mut tx = match writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .db_context("begin a ledger batch")
    {
        Ok(tx) => tx,
        Err(e) => return all_failed(ops.len(), &e),
    };
    let mut outcomes = Vec::with_capacity(ops.len());
    for (op, now) in ops {
        match statement_outcome(&mut *tx, op, *now).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => return all_failed(ops.len(), &e),
        }
    }
    match tx.commit().await.db_context("commit a ledger batch") {
        Ok(()) => outcomes,
        Err(e) => all_failed(ops.len(), &e),
    }
}

/// A batch on PostgreSQL: one call of `ledger_apply`, one round trip, one commit.
async fn postgres_batch(
    writer: &AnyPool,
    ops: &[(&Write, DateTime<Utc>)],
) -> Vec<Result<Transfer>> {
    let batch = match ops
        .iter()
        .map(|(op, now)| transfer_json(op, *now))
        .collect::<Result<Vec<_>>>()
    {
        Ok(batch) => batch,
        Err(e) => return all_failed(ops.len(), &e),
    };
    let rows = sqlx::query("SELECT * FROM ledger_apply($1::jsonb) ORDER BY ord")
        .bind(serde_json::Value::Array(batch).to_string())
        .fetch_all(writer)
        .await;
    let rows = match rows {
        Ok(rows) if rows.len() == ops.len() => rows,
        Ok(rows) => {
            let e = Error::internal(format!(
                "ledger_apply answered {} rows for {} operations",
                rows.len(),
                ops.len()
            ));
            return all_failed(ops.len(), &e);
        }
        Err(e) => {
            tracing::warn!(error = %e, "a ledger batch failed");
            return all_failed(ops.len(), &convert("apply a ledger batch", e));
        }
    };
    rows.iter()
        .zip(ops)
        .map(|(row, (op, _))| outcome_of_row(&op.op, row))
        .collect()
}
