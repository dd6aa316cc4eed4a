//! Session billing (SPEC §4), in one place: holds, ticks, deadlines, warnings, the last charge
//! of a stop, and the transfer ids that make every step a replay when it runs twice.
//!
//! A session's credits are reserved one window ahead by a hold. Tick `k` posts what the time
//! used since the previous tick cost against hold `k - 1` and places hold `k`; a stop posts the
//! last part. Cost is `cost_of(rate, elapsed)` cumulative, so it is exact to the micro-credit
//! however the time was split; transfer ids are `<session>.hold.<k>` and `<session>.settle.<k>`,
//! so a repeated step is a replay in the ledger, never a second charge.
//!
//! The monitor only schedules: it claims the sessions that are due and hands each to
//! [`SessionBilling::tick`]; the session service uses the same steps to start and stop.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::SessionService;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::id::{SessionId, UserId, WorkspaceId};
use crate::model::{
    LedgerOp, MicroCredits, Session, SessionEventKind, SessionRecord, SessionStatus, StopReason,
    Transfer, TransferId, Warning, cost_of,
};
use crate::ports::NewSessionEvent;
use crate::ports::compute::{ComputeNotice, ComputeStatus};

/// The id of step `step` (`hold`, `settle`, `void`) of hold `k` of `session`:
/// `<session>.<step>.<k>`.
pub(crate) fn transfer_id(session: SessionId, step: &str, k: u64) -> TransferId {
    crate::services::credits::step_id(session, step, k)
}

/// What billing `record` up to `until` (no further than its hold covers) comes to: the running
/// time then paid for, in ms, and what is still due for it. A session that never started owes
/// nothing.
fn due_until(record: &SessionRecord, until: DateTime<Utc>) -> (i64, MicroCredits) {
    let Some(started) = record.session.started_at else {
        return (record.billed_ms, 0);
    };
    let until = record.covered_until.map_or(until, |c| c.min(until));
    let end_ms = (until - started).num_milliseconds().max(record.billed_ms);
    let due = cost_of(record.session.rate_micros_per_hour, end_ms) - record.session.cost_micros;
    (end_ms, due.max(0))
}

/// The moment `record`'s last tick paid up to: its start plus the running time billed; `None`
/// when it never started.
pub(crate) fn last_tick_at(record: &SessionRecord) -> Option<DateTime<Utc>> {
    record
        .session
        .started_at
        .map(|started| started + Duration::milliseconds(record.billed_ms))
}

/// The longest running time whose cost stays within `max_cost` at `rate`, if the rate is
/// positive: `floor(max_cost × 3,600,000 / rate)` ms.
pub(crate) fn ms_within_cost(rate: MicroCredits, max_cost: MicroCredits) -> Option<i64> {
    (rate > 0).then(|| {
        let ms = i128::from(max_cost.max(0)) * 3_600_000 / i128::from(rate);
        i64::try_from(ms).unwrap_or(i64::MAX)
    })
}

/// A limit of a running session and the moment it stops the session.
pub(crate) struct Deadline {
    pub(crate) at: DateTime<Utc>,
    pub(crate) reason: StopReason,
    pub(crate) warning: Warning,
}

/// The limits of a session that started at `started`, and when each stops it.
pub(crate) fn deadlines(session: &Session, started: DateTime<Utc>) -> Vec<Deadline> {
    let secs = |v: u64| Duration::seconds(i64::try_from(v).unwrap_or(i64::MAX / 1000));
    let mut deadlines = vec![Deadline {
        at: started + secs(session.limits.max_duration_secs),
        reason: StopReason::DurationLimit,
        warning: Warning::DurationLimit,
    }];
    if let Some(ms) = ms_within_cost(session.rate_micros_per_hour, session.limits.max_cost_micros) {
        deadlines.push(Deadline {
            at: started + Duration::milliseconds(ms),
            reason: StopReason::CostLimit,
            warning: Warning::CostLimit,
        });
    }
    deadlines.push(Deadline {
        at: session.last_activity_at + secs(session.limits.idle_timeout_secs),
        reason: StopReason::IdleTimeout,
        warning: Warning::IdleTimeout,
    });
    deadlines
}

/// When a session checked at `now` is next due: after one check interval, or at its first
/// deadline if that comes sooner — a limit stops the session at its deadline, not at the
/// next pass after it.
pub(crate) fn next_check(
    session: &Session,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    interval: Duration,
) -> DateTime<Utc> {
    deadlines(session, started)
        .iter()
        .map(|d| d.at)
        .fold(now + interval, DateTime::min)
        .max(now)
}

/// The billing steps of one engine's sessions.
pub(crate) struct SessionBilling<'e> {
    engine: &'e Engine,
}

impl<'e> SessionBilling<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    fn sessions(&self) -> SessionService<'e> {
        SessionService::new(self.engine)
    }

    /// Places hold `k` of `session` at `now`: one billing window of cost, no more than what is
    /// left under its cost limit, timing out a window after the window ends. `None` when there
    /// is nothing to hold. A hold this step already placed (by another replica, with other
    /// figures) stands.
    pub(crate) async fn place_hold(
        &self,
        session: &Session,
        k: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<TransferId>> {
        let window = self.engine.config().sessions.billing_window();
        let amount = cost_of(session.rate_micros_per_hour, window.num_milliseconds())
            .min(session.limits.max_cost_micros - session.cost_micros);
        if amount <= 0 {
            return Ok(None);
        }
        let id = transfer_id(session.id, "hold", k);
        let op = LedgerOp::Hold {
            id: id.clone(),
            user: session.owner_id,
            amount,
            timeout_at: now + window + window,
            reference: Some(format!("session {}", session.id)),
        };
        self.engine.credits().execute_or_replayed(&op).await?;
        Ok(Some(id))
    }

    /// Marks a session that never ran `failed`, releasing its hold.
    pub(crate) async fn fail(&self, record: SessionRecord, error: &Error) {
        let id = record.session.id;
        if let Some(hold) = &record.hold {
            let void = LedgerOp::Void {
                id: transfer_id(id, "void", record.tick),
                hold: hold.clone(),
            };
            if let Err(e) = self.engine.credits().execute(&void).await {
                tracing::warn!(session = %id, error = %e, "could not void the hold of a failed start; it times out by itself");
            }
        }
        let mut next = record;
        next.version += 1;
        next.hold = None;
        next.session.status = SessionStatus::Failed;
        next.session.stop_reason = Some(StopReason::Failed);
        next.session.failure = Some(error.message().to_owned());
        next.session.stopped_at = Some(self.engine.clock().now());
        if let Err(e) = self.engine.database().sessions().update(&next).await {
            tracing::warn!(session = %id, error = %e, "could not mark a session failed");
        }
        self.sessions()
            .event(
                id,
                SessionEventKind::Failed {
                    error: error.message().to_owned(),
                },
                format!("failed: {}", error.message()),
            )
            .await;
    }

    /// Posts `amount` against `hold` as transfer `id` and returns what the ledger charged: the
    /// stored amount when this step already ran (with other figures), nothing when the hold
    /// timed out meanwhile.
    pub(crate) async fn settle(
        &self,
        session: SessionId,
        k: u64,
        hold: &TransferId,
        amount: MicroCredits,
    ) -> Result<MicroCredits> {
        let op = LedgerOp::Post {
            id: transfer_id(session, "settle", k),
            hold: hold.clone(),
            amount,
        };
        let outcome = self.engine.credits().execute(&op).await;
        self.charged(session, &op, outcome).await
    }

    /// What the ledger charged for post `op` of `session`, from its `outcome`: the stored
    /// amount when this step already ran (with other figures), nothing when the hold timed out
    /// meanwhile.
    async fn charged(
        &self,
        session: SessionId,
        op: &LedgerOp,
        outcome: Result<Transfer>,
    ) -> Result<MicroCredits> {
        match self.engine.credits().or_replayed(op, outcome).await {
            Ok(t) => Ok(t.amount),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::warn!(session = %session, "the hold timed out before it was settled; that time is not charged");
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Charges `record` up to `until` against its open hold (see [`due_until`]); returns the
    /// running time now paid for and what the ledger charged.
    pub(crate) async fn charge_until(
        &self,
        record: &SessionRecord,
        until: DateTime<Utc>,
    ) -> Result<(i64, MicroCredits)> {
        let (end_ms, due) = due_until(record, until);
        let charged = match &record.hold {
            Some(hold) => {
                self.settle(record.session.id, record.tick, hold, due)
                    .await?
            }
            None => 0,
        };
        Ok((end_ms, charged))
    }

    /// Records a tick's charge in the session's events (nothing when it charged nothing).
    pub(crate) async fn charged_event(&self, record: &SessionRecord, charged: MicroCredits) {
        if charged == 0 {
            return;
        }
        let now = self.engine.clock().now();
        self.sessions()
            .record_events(vec![charged_event(record, charged, now)])
            .await;
    }

    /// Passes on what the compute announced: an interruption becomes its session's warning.
    /// Run before anything that may stop a session for it, so the owner hears of an
    /// interruption before the session stops for it.
    pub(crate) async fn announce(&self) {
        let Some(compute) = self.engine.compute() else {
            return;
        };
        for notice in compute.take_notices() {
            let ComputeNotice::Interruption { session, message } = notice;
            if let Err(e) = self.interruption(session, &message).await {
                tracing::warn!(session = %session, error = %e, "could not record an interruption");
            }
        }
    }

    /// Stops a session whose compute was taken back at `at` (`preempted`, charged up to then),
    /// after passing on what the compute announced of it.
    pub(crate) async fn preempt(
        &self,
        record: SessionRecord,
        at: DateTime<Utc>,
        why: String,
        now: DateTime<Utc>,
    ) -> Result<SessionRecord> {
        self.announce().await;
        // The warning may have just been written: stop the session as it is now.
        let mut ended = self
            .engine
            .database()
            .sessions()
            .record(record.session.id)
            .await?
            .unwrap_or(record);
        ended.session.failure = Some(why);
        self.finish(ended, StopReason::Preempted, at.min(now), now)
            .await
    }

    /// Warns a running session that its capacity is being taken back — once, whichever
    /// replica heard of it first (the `warned` bit, written conditionally).
    pub(crate) async fn interruption(&self, id: SessionId, message: &str) -> Result<()> {
        let bit = Warning::Interruption.bit();
        let sessions = self.engine.database().sessions();
        for _ in 0..5 {
            let Some(record) = sessions.record(id).await? else {
                return Ok(());
            };
            if record.session.status != SessionStatus::Running || record.warned & bit != 0 {
                return Ok(());
            }
            let mut next = record;
            next.version += 1;
            next.warned |= bit;
            if sessions.update(&next).await? {
                self.sessions()
                    .event(
                        id,
                        SessionEventKind::Warning {
                            warning: Warning::Interruption,
                            seconds_left: 0,
                        },
                        format!("the session's capacity is being taken back: {message}"),
                    )
                    .await;
                return Ok(());
            }
        }
        Err(Error::conflict("the session kept changing"))
    }

    /// When and why the session's compute was taken back, if the compute says so.
    async fn preempted(&self, record: &SessionRecord) -> Option<(DateTime<Utc>, String)> {
        let compute = self.engine.compute()?;
        if !self.sessions().reaches(record) {
            return None;
        }
        match compute.status(record.session.id).await {
            Ok(ComputeStatus::Preempted { at, reason }) => Some((at, reason)),
            _ => None,
        }
    }

    /// Ends a running session for `reason`: charges it up to `bill_until` (no further than its
    /// hold covers), releases the hold, marks it stopped, and stops its compute when it runs
    /// here. `Conflict` when the session changed meanwhile (the caller re-reads).
    pub(crate) async fn finish(
        &self,
        record: SessionRecord,
        reason: StopReason,
        bill_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<SessionRecord> {
        let id = record.session.id;
        let mut next = record.clone();
        next.version += 1;
        let (end_ms, charged) = self.charge_until(&record, bill_until).await?;
        next.session.cost_micros += charged;
        next.billed_ms = end_ms;
        next.hold = None;
        next.next_check_at = None;
        next.session.status = if reason == StopReason::Failed {
            SessionStatus::Failed
        } else {
            SessionStatus::Stopped
        };
        next.session.stop_reason = Some(reason);
        // Capacity taken back ended the session when it went, not when that was noticed.
        next.session.stopped_at = Some(if reason == StopReason::Preempted {
            bill_until.min(now)
        } else {
            now
        });
        if !self.engine.database().sessions().update(&next).await? {
            return Err(Error::conflict("the session changed meanwhile"));
        }
        // A tick whose ledger batch committed and whose record did not (its server was killed
        // between the two, or the write failed) placed the next hold, which no record names.
        // Only now that the session is stopped, so no tick can take that hold up any more.
        let next_hold = record.tick + 1;
        self.void_unrecorded_hold(id, next_hold, transfer_id(id, "hold", next_hold))
            .await;
        self.engine.shared().activity.forget(id);
        self.sessions()
            .event(
                id,
                SessionEventKind::Stopped {
                    reason,
                    cost_micros: next.session.cost_micros,
                },
                format!(
                    "stopped ({}); total cost {} micro-credits",
                    reason.as_str(),
                    next.session.cost_micros
                ),
            )
            .await;
        if self.sessions().reaches(&next)
            && let Some(compute) = self.engine.compute()
            && let Err(e) = compute.stop_session(id).await
        {
            // The monitor's sweep tries again.
            tracing::warn!(session = %id, error = %e, "could not stop the session's compute");
        }
        tracing::info!(session = %id, reason = reason.as_str(), cost = next.session.cost_micros, "session stopped");
        Ok(next)
    }

    /// Why a leased session must stop at `now`, if it must: capacity taken back, a limit
    /// passed (the first), or files over the storage quota (`quotas` remembers each
    /// workspace's answer for the batch).
    async fn stop_due(
        &self,
        record: &SessionRecord,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
        quotas: &mut HashMap<WorkspaceId, Option<u64>>,
    ) -> Result<Option<Stop>> {
        let first = deadlines(&record.session, started)
            .into_iter()
            .filter(|d| d.at <= now)
            .min_by_key(|d| d.at);
        // Capacity taken back before now ends the session there: not charged past it.
        if let Some((at, why)) = self.preempted(record).await
            && first.as_ref().is_none_or(|d| at < d.at)
        {
            return Ok(Some(Stop::Preempted(at, why)));
        }
        if let Some(first) = first {
            return Ok(Some(Stop::Limit(first.reason, first.at)));
        }
        // Files the session wrote itself passed no quota check: this one stops it.
        let workspace = record.session.workspace_id;
        let over = match quotas.get(&workspace) {
            Some(over) => *over,
            None => {
                let over = self.engine.storage().over_quota(workspace).await?;
                quotas.insert(workspace, over);
                over
            }
        };
        Ok(over.map(|over| {
            tracing::info!(session = %record.session.id, over, "the workspace's files went over the storage quota");
            Stop::Limit(StopReason::StorageQuota, now)
        }))
    }

    /// Whether each workspace of `records` is over its storage quota, asked for all of them at
    /// once. Empty when that failed: each workspace is then asked on its own, and its
    /// sessions carry the error.
    async fn quotas_of(&self, records: &[SessionRecord]) -> HashMap<WorkspaceId, Option<u64>> {
        let mut workspaces: Vec<WorkspaceId> = records
            .iter()
            .filter(|r| r.session.started_at.is_some())
            .map(|r| r.session.workspace_id)
            .collect();
        workspaces.sort_unstable();
        workspaces.dedup();
        match self.engine.storage().over_quota_of(&workspaces).await {
            Ok(over) => workspaces.into_iter().zip(over).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not check a batch's storage quotas at once; checking each workspace");
                HashMap::new()
            }
        }
    }

    /// Ticks leased sessions at `now`, together: each is stopped if a limit passed (charged
    /// up to the limit), else charged for the time since its last tick against its hold and
    /// given its next hold — stopped with `credits_exhausted` when that is refused — and
    /// warned of limits that are near. The charges and holds of the whole batch go to the
    /// ledger as one batch, in the order of `records` (so one owner's sessions are served in
    /// that order, as one after another would be); the records and their events are written
    /// together, in one transaction. Returns each session's stop reason if it stopped.
    pub(crate) async fn tick_batch(
        &self,
        records: Vec<SessionRecord>,
        now: DateTime<Utc>,
    ) -> Vec<(SessionId, Result<Option<StopReason>>)> {
        let mut results = Vec::with_capacity(records.len());
        let mut quotas = self.quotas_of(&records).await;
        let mut going = Vec::with_capacity(records.len());
        for record in records {
            let id = record.session.id;
            let Some(started) = record.session.started_at else {
                results.push((id, Ok(None)));
                continue;
            };
            let stopped = match self.stop_due(&record, started, now, &mut quotas).await {
                Ok(None) => {
                    going.push((record, started));
                    continue;
                }
                Ok(Some(Stop::Preempted(at, why))) => self
                    .preempt(record, at, why, now)
                    .await
                    .map(|_| Some(StopReason::Preempted)),
                Ok(Some(Stop::Limit(reason, at))) => self
                    .finish(record, reason, at, now)
                    .await
                    .map(|_| Some(reason)),
                Err(e) => Err(e),
            };
            results.push((id, stopped));
        }
        if going.is_empty() {
            return results;
        }
        match self.charge_and_extend(going, now).await {
            Ok(done) => results.extend(done),
            Err((ids, e)) => results.extend(ids.into_iter().map(|id| {
                (
                    id,
                    Err(Error::new(
                        e.kind(),
                        format!("the billing batch failed: {e}"),
                    )),
                )
            })),
        }
        results
    }

    /// After a tick lost the race to write its session (a stop came first), releases the hold
    /// the tick placed if the session ended without it — else it would stay held until its
    /// timeout. A session that goes on keeps it: its next tick places the same hold again (a
    /// replay), so it must not be voided.
    async fn release_unused_hold(&self, ticked: &SessionRecord) {
        let Some(hold) = &ticked.hold else { return };
        let id = ticked.session.id;
        let current = match self.engine.database().sessions().record(id).await {
            Ok(Some(current)) => current,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "could not re-read a session after a lost tick; its hold times out by itself");
                return;
            }
        };
        if !current.session.is_finished() || current.hold.as_ref() == Some(hold) {
            return;
        }
        self.void_unrecorded_hold(id, ticked.tick, hold.clone())
            .await;
    }

    /// Voids hold `k` of session `id`, which a tick placed but no record of the (now ended)
    /// session names. Nothing to do when the hold was never placed (the tick stopped short of
    /// its ledger batch) or is settled already (the stop found it after all); when the void
    /// fails, the hold times out by itself.
    async fn void_unrecorded_hold(&self, id: SessionId, k: u64, hold: TransferId) {
        let void = LedgerOp::Void {
            id: transfer_id(id, "void", k),
            hold,
        };
        match self.engine.credits().execute(&void).await {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {}
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "could not release a hold no record names; it times out by itself")
            }
        }
    }

    /// The regular part of a batch's ticks: charges, next holds, records, events. `Err` (with
    /// every session) when the ledger batch could not be applied.
    async fn charge_and_extend(
        &self,
        going: Vec<(SessionRecord, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> std::result::Result<Vec<(SessionId, Result<Option<StopReason>>)>, (Vec<SessionId>, Error)>
    {
        let settings = &self.engine.config().sessions;
        let window = settings.billing_window();
        // Every session's post of the time since its last tick, then its next hold.
        let mut ops = Vec::with_capacity(going.len() * 2);
        let mut steps = Vec::with_capacity(going.len());
        for (record, started) in going {
            let (end_ms, due) = due_until(&record, now);
            let post = record.hold.as_ref().map(|hold| {
                ops.push(LedgerOp::Post {
                    id: transfer_id(record.session.id, "settle", record.tick),
                    hold: hold.clone(),
                    amount: due,
                });
                ops.len() - 1
            });
            // The hold is sized as if the charge went through as computed (it does, unless
            // this step already ran with other figures; the stored hold then stands).
            let next_tick = record.tick + 1;
            let amount = cost_of(
                record.session.rate_micros_per_hour,
                window.num_milliseconds(),
            )
            .min(record.session.limits.max_cost_micros - record.session.cost_micros - due);
            let hold = (amount > 0).then(|| {
                ops.push(LedgerOp::Hold {
                    id: transfer_id(record.session.id, "hold", next_tick),
                    user: record.session.owner_id,
                    amount,
                    timeout_at: now + window + window,
                    reference: Some(format!("session {}", record.session.id)),
                });
                ops.len() - 1
            });
            steps.push(Step {
                record,
                started,
                end_ms,
                post,
                hold,
            });
        }
        let outcomes = match self.engine.database().ledger().apply_batch(&ops, now).await {
            Ok(outcomes) if outcomes.len() == ops.len() => outcomes,
            Ok(outcomes) => {
                let e = Error::internal(format!(
                    "the ledger answered {} outcomes for {} operations",
                    outcomes.len(),
                    ops.len()
                ));
                return Err((steps.iter().map(|s| s.record.session.id).collect(), e));
            }
            Err(e) => return Err((steps.iter().map(|s| s.record.session.id).collect(), e)),
        };
        let mut outcomes: Vec<Option<Result<Transfer>>> = outcomes.into_iter().map(Some).collect();
        // Each step's operation and its outcome, taken once.
        let mut take = |i: Option<usize>| i.and_then(|i| Some((&ops[i], outcomes[i].take()?)));

        let mut results = Vec::new();
        let mut written = Vec::new();
        for step in steps {
            let id = step.record.session.id;
            let charged = match take(step.post) {
                None => Ok(0),
                Some((op, outcome)) => self.charged(id, op, outcome).await,
            };
            let charged = match charged {
                Ok(c) => c,
                Err(e) => {
                    results.push((id, Err(e)));
                    continue;
                }
            };
            let mut next = step.record.clone();
            next.version += 1;
            next.session.cost_micros += charged;
            next.billed_ms = step.end_ms;
            next.tick = step.record.tick + 1;
            next.hold = match take(step.hold) {
                None => None,
                Some((op, outcome)) => {
                    match self.engine.credits().or_replayed(op, outcome).await {
                        Ok(t) => Some(t.id),
                        Err(e) if e.kind() == ErrorKind::InsufficientCredits => {
                            // Paid up to now; it cannot run on credit it does not have.
                            // `finish` writes this tick's state with the stop, in one
                            // conditional update.
                            next.version = step.record.version;
                            next.hold = None;
                            self.charged_event(&next, charged).await;
                            let stopped = self
                                .finish(next, StopReason::CreditsExhausted, now, now)
                                .await
                                .map(|_| Some(StopReason::CreditsExhausted));
                            results.push((id, stopped));
                            continue;
                        }
                        Err(e) => {
                            results.push((id, Err(e)));
                            continue;
                        }
                    }
                }
            };
            next.covered_until = Some(now + window);
            next.next_check_at = Some(next_check(
                &next.session,
                step.started,
                now,
                settings.check_interval(),
            ));
            written.push((next, charged, step.started));
        }
        if written.is_empty() {
            return Ok(results);
        }

        // Warnings, once each, before a limit stops a session.
        let mut users: Vec<UserId> = written.iter().map(|(n, _, _)| n.session.owner_id).collect();
        users.sort_unstable();
        users.dedup();
        let available: HashMap<UserId, MicroCredits> =
            match self.engine.database().ledger().counters(&users).await {
                Ok(counters) => counters
                    .into_iter()
                    .map(|(u, c)| (u, c.available()))
                    .collect(),
                Err(e) => {
                    let ids = written.iter().map(|(n, _, _)| n.session.id);
                    results.extend(ids.map(|id| {
                        (
                            id,
                            Err(Error::new(
                                e.kind(),
                                format!("could not read balances: {e}"),
                            )),
                        )
                    }));
                    return Ok(results);
                }
            };
        let lead = settings.warning_lead();
        let mut warnings = Vec::with_capacity(written.len());
        for (next, _, started) in &mut written {
            let mut mine = Vec::new();
            for d in &deadlines(&next.session, *started) {
                let left = d.at - now;
                let bit = d.warning.bit();
                if left <= lead {
                    if next.warned & bit == 0 {
                        next.warned |= bit;
                        mine.push((d.warning, left.num_seconds(), d.reason));
                    }
                } else {
                    // Activity pushed an idle deadline back: warn again next time it nears.
                    next.warned &= !bit;
                }
            }
            let low = Warning::CreditsLow.bit();
            let window_cost = cost_of(next.session.rate_micros_per_hour, window.num_milliseconds());
            let left = available.get(&next.session.owner_id).copied().unwrap_or(0);
            if left < window_cost && next.hold.is_some() {
                if next.warned & low == 0 {
                    next.warned |= low;
                    mine.push((
                        Warning::CreditsLow,
                        window.num_seconds(),
                        StopReason::CreditsExhausted,
                    ));
                }
            } else {
                next.warned &= !low;
            }
            warnings.push(mine);
        }

        // Each tick's charge and warnings, stored with its record (and only if it is).
        let mut events = Vec::new();
        for ((next, charged, _), mine) in written.iter().zip(warnings) {
            let id = next.session.id;
            if *charged > 0 {
                events.push(charged_event(next, *charged, now));
            }
            for (warning, seconds_left, reason) in mine {
                events.push(NewSessionEvent {
                    session: id,
                    at: now,
                    kind: SessionEventKind::Warning {
                        warning,
                        seconds_left,
                    },
                    message: format!(
                        "the session stops in about {} ({})",
                        human_duration(seconds_left),
                        reason.as_str()
                    ),
                });
            }
        }
        let records: Vec<SessionRecord> = written.into_iter().map(|(n, _, _)| n).collect();
        let (wrote, stored) = match self
            .engine
            .database()
            .sessions()
            .record_ticks(&records, &events)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                results.extend(records.iter().map(|r| {
                    (
                        r.session.id,
                        Err(Error::new(
                            e.kind(),
                            format!("could not store the ticks: {e}"),
                        )),
                    )
                }));
                return Ok(results);
            }
        };
        for (next, wrote) in records.iter().zip(wrote) {
            let id = next.session.id;
            if wrote {
                results.push((id, Ok(None)));
            } else {
                self.release_unused_hold(next).await;
                results.push((
                    id,
                    Err(Error::conflict("the session changed during its tick")),
                ));
            }
        }
        self.sessions().publish(stored);
        Ok(results)
    }

    /// Ends a session a restart left unfinished: `server_restart_reconciled`, charged up to its
    /// last tick (the time since cannot be proven), or `failed` when it never got to run.
    pub(crate) async fn reconcile(
        &self,
        mut record: SessionRecord,
        now: DateTime<Utc>,
    ) -> Result<StopReason> {
        let (reason, bill_until) = match (record.session.status, last_tick_at(&record)) {
            (SessionStatus::Running | SessionStatus::Stopping, Some(last_tick)) => {
                (StopReason::ServerRestartReconciled, last_tick)
            }
            _ => {
                // It never got to run: fail it, releasing its hold.
                record.session.failure =
                    Some("the server restarted while the session was starting".into());
                (StopReason::Failed, now)
            }
        };
        self.finish(record, reason, bill_until, now).await?;
        Ok(reason)
    }
}

/// Why a session stops at a tick.
enum Stop {
    /// Its capacity was taken back at this moment, for this reason.
    Preempted(DateTime<Utc>, String),
    /// A limit: charged up to this moment.
    Limit(StopReason, DateTime<Utc>),
}

/// A session of a batch that goes on: its record, when it started, the running time this
/// tick pays for, and where its post and next hold are among the batch's operations.
struct Step {
    record: SessionRecord,
    started: DateTime<Utc>,
    end_ms: i64,
    post: Option<usize>,
    hold: Option<usize>,
}

/// The event of a tick's charge (`record` as it is after the charge).
fn charged_event(
    record: &SessionRecord,
    charged: MicroCredits,
    at: DateTime<Utc>,
) -> NewSessionEvent {
    let cost = record.session.cost_micros;
    NewSessionEvent {
        session: record.session.id,
        at,
        kind: SessionEventKind::Charged {
            tick: record.tick,
            amount_micros: charged,
            cost_micros: cost,
        },
        message: format!("charged {charged} micro-credits; {cost} so far"),
    }
}

/// `90` → `1 min 30 s`.
fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}
