//! The session monitor: charges running sessions tick by tick, enforces their limits, warns
//! before it stops them, and reconciles sessions with the compute that runs them.
//!
//! [`Monitor::run_once`] is one pass at the engine clock's "now", so tests drive it on simulated
//! time; [`Monitor::spawn`] runs passes on a real timer. Several replicas may run monitors over
//! one database: each pass leases the sessions it ticks (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), every write is conditional on the version read, and the ledger's transfer ids
//! are derived from (session, tick) — so a tick is charged once, whoever runs it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::engine::Engine;
use crate::error::Result;
use crate::id::SessionId;
use crate::model::{SessionStatus, StopReason};
use crate::ports::compute::ComputeStatus;
use crate::services::sessions::billing::{SessionBilling, last_tick_at};

/// The shortest pause between passes, so that a session due again and again (its tick
/// failing, say) cannot keep the loop busy.
const MIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Sessions charged and checked.
    pub ticked: usize,
    /// Sessions stopped, with why.
    pub stopped: Vec<(SessionId, StopReason)>,
    /// Processes of sessions that had ended, killed.
    pub orphans_killed: usize,
    /// Workspaces whose storage was sampled and charged.
    pub storage_sampled: usize,
    /// Resumable uploads abandoned because they expired.
    pub uploads_expired: usize,
    /// Steps that failed (logged; retried on the next pass).
    pub errors: usize,
}

/// The session monitor of one engine (one server replica).
#[derive(Debug, Clone)]
pub struct Monitor {
    engine: Engine,
}

/// A running monitor task; dropping it stops the task.
#[derive(Debug)]
pub struct MonitorHandle(tokio::task::JoinHandle<()>);

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// The session monitor: billing ticks, limits, reconciliation.
    pub fn monitor(&self) -> Monitor {
        Monitor {
            engine: self.clone(),
        }
    }
}

impl Monitor {
    /// Reconciles once ([`Self::reconcile_after_restart`]), then runs a pass every check
    /// interval — or as soon as a session is due, when that is sooner — until the handle is
    /// dropped.
    pub fn spawn(self) -> MonitorHandle {
        MonitorHandle(tokio::spawn(async move {
            match self.reconcile_after_restart().await {
                Ok(report) if !report.stopped.is_empty() || report.orphans_killed > 0 => {
                    tracing::info!(
                        stopped = report.stopped.len(),
                        orphans = report.orphans_killed,
                        "reconciled sessions left by the previous run"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not reconcile sessions at start-up"),
            }
            let wake = self.engine.shared().monitor_wake.clone();
            let interval =
                std::time::Duration::from_millis(self.engine.config().sessions.check_interval_ms);
            // Full passes (sweep, storage billing, expiries) keep to the check interval; the
            // wake-ups in between, for deadlines, only tick the sessions that are due.
            let mut next_full = tokio::time::Instant::now();
            loop {
                if tokio::time::Instant::now() >= next_full {
                    next_full = tokio::time::Instant::now() + interval;
                    if let Err(e) = self.run_once().await {
                        tracing::warn!(error = %e, "monitor pass failed");
                    }
                } else {
                    let now = self.engine.clock().now();
                    if let Err(e) = self.tick_due(now, &mut PassReport::default()).await {
                        tracing::warn!(error = %e, "monitor tick failed");
                    }
                }
                let pause = self
                    .until_next_pass()
                    .await
                    .min(next_full.saturating_duration_since(tokio::time::Instant::now()));
                // A session started here may be due before then: its start wakes the loop.
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = wake.notified() => {}
                }
            }
        }))
    }

    /// How long to wait before the next pass: one check interval, or less when a session is
    /// due sooner (a limit's deadline, a lease that runs out), so that limits stop sessions
    /// at their deadline rather than at the next pass after it.
    async fn until_next_pass(&self) -> std::time::Duration {
        let interval =
            std::time::Duration::from_millis(self.engine.config().sessions.check_interval_ms);
        let due = match self.engine.database().sessions().next_due().await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read when the next session is due");
                None
            }
        };
        due.map_or(interval, |at| {
            let wait = (at - self.engine.clock().now())
                .to_std()
                .unwrap_or_default();
            wait.clamp(MIN_PAUSE, interval)
        })
    }

    /// After a restart. On compute of this machine, every unfinished session of this node is
    /// stopped (`server_restart_reconciled`), charged up to its last tick — the time since
    /// cannot be proven — and its processes are killed; processes of sessions this node does
    /// not know are killed too. On compute every node reaches (pods), running sessions outlive
    /// the restart: they are left to the sweep, which ends those whose compute went; the ones
    /// this node was starting or stopping are reconciled; compute no session owns is removed.
    /// Sessions created after `started` (by this process) are not leftovers.
    pub async fn reconcile_after_restart(&self) -> Result<PassReport> {
        let mut report = PassReport::default();
        let started = self.engine.clock().now();
        let billing = SessionBilling::new(&self.engine);
        let db = self.engine.database();
        let shared = self
            .engine
            .compute()
            .is_some_and(|c| !c.capabilities().node_local);
        // What runs here, taken before the sessions are read: a session started meanwhile is
        // read or not, but never taken for an orphan.
        let running = self.running_here(!shared).await?;
        // Those that could not be reconciled stay as they are, processes included.
        let mut kept = HashSet::new();
        for record in db.sessions().unfinished(Some(self.engine.node())).await? {
            let id = record.session.id;
            if record.session.created_at >= started
                || (shared && record.session.status == SessionStatus::Running)
            {
                kept.insert(id);
                continue;
            }
            let now = self.engine.clock().now();
            match billing.reconcile(record, now).await {
                Ok(reason) => report.stopped.push((id, reason)),
                Err(e) => {
                    report.errors += 1;
                    kept.insert(id);
                    tracing::warn!(session = %id, error = %e, "could not reconcile a session");
                }
            }
        }
        if shared {
            self.sweep(&mut report).await?;
        } else {
            report.orphans_killed += self.kill_orphans(running, &kept).await?;
        }
        Ok(report)
    }

    /// One pass at the clock's now: releases timed-out holds, sweeps this node's compute, and
    /// ticks every due session this replica can lease.
    pub async fn run_once(&self) -> Result<PassReport> {
        let mut report = PassReport::default();
        let now = self.engine.clock().now();
        self.engine.database().ledger().expire_due(now).await?;
        self.sweep(&mut report).await?;
        self.tick_due(now, &mut report).await?;
        let (sampled, failed) = self
            .engine
            .storage()
            .bill_due(self.engine.node(), now)
            .await?;
        report.storage_sampled = sampled;
        report.errors += failed;
        let (expired, failed) = self.engine.storage().abandon_uploads(now, None).await?;
        report.uploads_expired = expired;
        report.errors += failed;
        Ok(report)
    }

    /// Ticks every session due at `now` that this replica can lease — the part of a pass a
    /// limit's deadline needs, without the sweep and the storage billing of a full one. Sessions
    /// are claimed and billed in batches of `sessions.billing_batch`: one ledger batch, and one
    /// transaction of their records and events, per claim.
    pub async fn tick_due(&self, now: DateTime<Utc>, report: &mut PassReport) -> Result<()> {
        // Activity recorded here is written before idle deadlines are read.
        self.engine.sessions().flush_activity().await;
        self.engine.api_keys().write_uses_in_background(true);
        SessionBilling::new(&self.engine).announce().await;
        let lease = self.engine.config().sessions.lease();
        let billing = SessionBilling::new(&self.engine);
        loop {
            let claimed = self
                .engine
                .database()
                .sessions()
                .claim_due(
                    self.engine.node(),
                    now,
                    now + lease,
                    self.engine.config().sessions.billing_batch,
                )
                .await?;
            if claimed.is_empty() {
                return Ok(());
            }
            for (id, outcome) in billing.tick_batch(claimed, now).await {
                match outcome {
                    Ok(Some(reason)) => {
                        report.ticked += 1;
                        report.stopped.push((id, reason));
                    }
                    Ok(None) => report.ticked += 1,
                    Err(e) => {
                        report.errors += 1;
                        tracing::warn!(session = %id, error = %e, "session tick failed");
                    }
                }
            }
        }
    }

    /// Stops running sessions of this node whose compute ended by itself, and kills processes
    /// of sessions that have ended.
    async fn sweep(&self, report: &mut PassReport) -> Result<()> {
        let Some(compute) = self.engine.compute() else {
            return Ok(());
        };
        SessionBilling::new(&self.engine).announce().await;
        // Compute every node reaches runs every node's sessions: each replica sweeps them all
        // (the writes are conditional, so two replicas ending one session end it once).
        let shared = !compute.capabilities().node_local;
        // Taken before the sessions are read, as at a restart.
        let running = self.running_here(true).await?;
        let db = self.engine.database();
        let unfinished = db
            .sessions()
            .unfinished_statuses((!shared).then_some(self.engine.node()))
            .await?;
        let mut live: HashSet<SessionId> = unfinished
            .iter()
            .filter(|(_, status)| {
                matches!(
                    status,
                    SessionStatus::Running | SessionStatus::Starting | SessionStatus::Pending
                )
            })
            .map(|(id, _)| *id)
            .collect();
        for (id, status) in unfinished {
            if status != SessionStatus::Running {
                continue;
            }
            // Why the session ends and up to when it is charged (`None`: its last tick).
            // A shell that exits cleanly is its user ending the session; otherwise it failed.
            let now = self.engine.clock().now();
            let gone = match compute.status(id).await {
                Ok(ComputeStatus::Exited(Some(0))) => Some((StopReason::User, None, Some(now))),
                Ok(ComputeStatus::Exited(code)) => Some((
                    StopReason::Failed,
                    Some(format!(
                        "the session's shell exited{}",
                        code.map(|c| format!(" with code {c}"))
                            .unwrap_or_else(|| " on a signal".into())
                    )),
                    Some(now),
                )),
                // Charged up to the moment its capacity went, not to when it was noticed.
                Ok(ComputeStatus::Preempted { at, reason }) => {
                    Some((StopReason::Preempted, Some(reason), Some(at.min(now))))
                }
                Ok(ComputeStatus::Failed { reason }) => {
                    Some((StopReason::Failed, Some(reason), Some(now)))
                }
                // Gone from compute every node watches: it went while no server watched (all
                // were down). It is charged up to its last tick: the time since cannot be proven.
                Ok(ComputeStatus::Gone) if shared => Some((
                    StopReason::ServerRestartReconciled,
                    Some("the session's pod went while no server was watching".to_owned()),
                    None,
                )),
                Ok(ComputeStatus::Gone) => Some((
                    StopReason::Failed,
                    Some("the session's compute is gone".to_owned()),
                    Some(now),
                )),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "could not read a session's compute status");
                    None
                }
            };
            let Some((reason, why, until)) = gone else {
                continue;
            };
            // Only the sessions that stop are read whole, as they are now.
            let record = match db.sessions().record(id).await {
                Ok(Some(record)) if record.session.status == SessionStatus::Running => record,
                // Ended meanwhile (its processes are orphans now), or no longer running.
                Ok(record) => {
                    if record.is_none_or(|r| r.session.is_finished()) {
                        live.remove(&id);
                    }
                    continue;
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(session = %id, error = %e, "could not read a session whose compute ended");
                    continue;
                }
            };
            let until = until.unwrap_or_else(|| last_tick_at(&record).unwrap_or(now));
            let billing = SessionBilling::new(&self.engine);
            let stopped = if reason == StopReason::Preempted {
                billing
                    .preempt(record, until, why.unwrap_or_default(), now)
                    .await
            } else {
                let mut ended = record;
                ended.session.failure = why;
                billing.finish(ended, reason, until, now).await
            };
            match stopped {
                Ok(_) => {
                    live.remove(&id);
                    report.stopped.push((id, reason));
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(session = %id, error = %e, "could not stop a session whose compute ended");
                }
            }
        }
        report.orphans_killed += self.kill_orphans(running, &live).await?;
        Ok(())
    }

    /// The sessions the compute runs (none without compute, or when `wanted` is false). Read
    /// before the sessions' records whenever orphans are looked for among them: a session is
    /// recorded before its compute starts, so each one of them is either among the records
    /// read after, or ended. Read after, it could include a session started since the records
    /// were read, which would be killed as an orphan.
    async fn running_here(&self, wanted: bool) -> Result<Vec<SessionId>> {
        match self.engine.compute() {
            Some(compute) if wanted => compute.running_sessions().await,
            _ => Ok(Vec::new()),
        }
    }

    /// Kills the compute of every session of `running` (what the compute ran before `live`
    /// was read) that is not in `live` (stopped, perhaps by another replica, or never known).
    async fn kill_orphans(
        &self,
        running: Vec<SessionId>,
        live: &HashSet<SessionId>,
    ) -> Result<usize> {
        let Some(compute) = self.engine.compute() else {
            return Ok(0);
        };
        let mut killed = 0;
        let shared = !compute.capabilities().node_local;
        for id in running {
            if live.contains(&id) {
                continue;
            }
            // Compute every replica reaches also runs the sessions other replicas started:
            // only those no replica runs any more are orphans.
            if shared
                && self
                    .engine
                    .database()
                    .sessions()
                    .record(id)
                    .await?
                    .is_some_and(|r| {
                        !matches!(
                            r.session.status,
                            SessionStatus::Stopped | SessionStatus::Failed
                        )
                    })
            {
                continue;
            }
            match compute.stop_session(id).await {
                Ok(()) => {
                    killed += 1;
                    tracing::info!(session = %id, "killed the processes of a session that had ended");
                }
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "could not kill an orphaned session")
                }
            }
        }
        Ok(killed)
    }
}
