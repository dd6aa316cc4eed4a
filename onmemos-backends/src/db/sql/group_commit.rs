//! Group commit for ledger writes: the writes that arrive while a batch is being applied go
//! together into the next one, so concurrent callers share one transaction (its round trips,
//! page writes and fsync) instead of queueing for one each.
//!
//! Callers submit jobs (one operation, or a caller's own batch); workers take what is queued,
//! up to [`MAX_WRITES`] writes, and apply it as one batch ([`super::ledger_batch`]). Every job
//! gets its own outcomes. If a merged batch fails for a reason other than a transient one, each
//! of its jobs is applied alone, so one job's failure is never another's. PostgreSQL runs
//! [`POSTGRES_WORKERS`] workers: their batches lock accounts in one order and so commit in
//! parallel where they touch different accounts; SQLite has one writer, so one worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use onmemos_core::{Error, ErrorKind, Result};
use sqlx::AnyPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::ledger_batch::{Outcome, Write, apply};
use super::{Dialect, Inline};

/// Most writes per batch (a caller's larger batch goes alone).
const MAX_WRITES: usize = 4096;

/// Batches applied at once per database handle on PostgreSQL.
const POSTGRES_WORKERS: usize = 2;

struct Job {
    writes: Vec<Write>,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<Vec<Outcome>>>,
}

/// How the queue has been used: writes applied, and the commits they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Writes applied (whatever their outcome).
    pub operations: u64,
    /// Transactions (batches) they were applied in.
    pub commits: u64,
}

#[derive(Default)]
struct Counters {
    operations: AtomicU64,
    commits: AtomicU64,
}

/// The sending side of the queue, held by the database handle. The workers end when the last
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
    /// Starts the workers that apply queued writes through `writer` (and SQLite's loads
    /// through `inline`).
    pub(crate) fn start(writer: AnyPool, dialect: Dialect, inline: Option<Arc<Inline>>) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let jobs = Arc::new(Mutex::new(jobs));
        let workers = match dialect {
            Dialect::Sqlite => 1,
            Dialect::Postgres => POSTGRES_WORKERS,
        };
        for _ in 0..workers {
            tokio::spawn(run(
                writer.clone(),
                dialect,
                inline.clone(),
                jobs.clone(),
                counters.clone(),
            ));
        }
        Self { queue, counters }
    }

    /// Applies `writes` (in order, in one batch) and waits for their outcomes; `Err` when the
    /// batch could not be applied at all.
    pub(crate) async fn submit(
        &self,
        writes: Vec<Write>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Outcome>> {
        let (reply, answer) = oneshot::channel();
        let job = Job { writes, now, reply };
        if self.queue.send(job).is_err() {
            return Err(Error::unavailable("the ledger's commit queue has stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::unavailable("the ledger's commit queue has stopped")))
    }

    /// Writes applied and commits made so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            operations: self.counters.operations.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }
}

/// Takes the next batch of jobs: waits for one, then takes what else is queued while the
/// batch has room.
async fn next_batch(jobs: &Mutex<mpsc::UnboundedReceiver<Job>>) -> Option<Vec<Job>> {
    let mut rx = jobs.lock().await;
    let first = rx.recv().await?;
    let mut size = first.writes.len();
    let mut batch = vec![first];
    while size < MAX_WRITES {
        match rx.try_recv() {
            Ok(job) => {
                size += job.writes.len();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn run(
    writer: AnyPool,
    dialect: Dialect,
    inline: Option<Arc<Inline>>,
    jobs: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    counters: Arc<Counters>,
) {
    while let Some(batch) = next_batch(&jobs).await {
        let writes: Vec<(Write, DateTime<Utc>)> = batch
            .iter()
            .flat_map(|j| j.writes.iter().map(|w| (w.clone(), j.now)))
            .collect();
        let n = writes.len() as u64;
        let applied = apply(&writer, dialect, inline.as_deref(), writes).await;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters.operations.fetch_add(n, Ordering::Relaxed);
        match applied {
            Ok(mut outcomes) => {
                for job in batch {
                    let rest = outcomes.split_off(job.writes.len().min(outcomes.len()));
                    let mine = std::mem::replace(&mut outcomes, rest);
                    // The caller may have gone away (its request was cancelled).
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) if batch.len() > 1 && e.kind() != ErrorKind::Unavailable => {
                tracing::warn!(error = %e, jobs = batch.len(), "a ledger batch failed; applying its jobs one by one");
                for job in batch {
                    let writes: Vec<(Write, DateTime<Utc>)> =
                        job.writes.iter().map(|w| (w.clone(), job.now)).collect();
                    let alone = apply(&writer, dialect, inline.as_deref(), writes).await;
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                    let _ = job.reply.send(alone);
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(Error::new(
                        e.kind(),
                        format!("the ledger batch did not commit: {e}"),
                    )));
                }
            }
        }
    }
}
