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

use chrono::{DateTime, Duration, Utc};

use super::SessionService;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::id::SessionId;
use crate::model::{
    LedgerOp, MicroCredits, Session, SessionEventKind, SessionRecord, SessionStatus, StopReason,
    TransferId, Warning, cost_of,
};
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
        let id = transfer_id(session, "settle", k);
        let op = LedgerOp::Post {
            id: id.clone(),
            hold: hold.clone(),
            amount,
        };
        match self.engine.credits().execute_or_replayed(&op).await {
            Ok(t) => Ok(t.amount),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::warn!(session = %session, hold = %hold, "the hold timed out before it was settled; that time is not charged");
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
        let cost = record.session.cost_micros;
        self.sessions()
            .event(
                record.session.id,
                SessionEventKind::Charged {
                    tick: record.tick,
                    amount_micros: charged,
                    cost_micros: cost,
                },
                format!("charged {charged} micro-credits; {cost} so far"),
            )
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
        if self.sessions().reaches(&next)
            && let Some(compute) = self.engine.compute()
            && let Err(e) = compute.stop_session(id).await
        {
            // The monitor's sweep tries again.
            tracing::warn!(session = %id, error = %e, "could not stop the session's compute");
        }
        self.engine
            .shared()
            .activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
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
        tracing::info!(session = %id, reason = reason.as_str(), cost = next.session.cost_micros, "session stopped");
        Ok(next)
    }

    /// One tick of a leased session at `now`: stops it if a limit passed (charging up to the
    /// limit), else charges the time since the last tick, extends the hold — stopping it with
    /// `credits_exhausted` when that is refused — and warns of limits that are near. Returns
    /// the stop reason if it stopped.
    pub(crate) async fn tick(
        &self,
        record: SessionRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<StopReason>> {
        let Some(started) = record.session.started_at else {
            return Ok(None);
        };
        let deadlines = deadlines(&record.session, started);
        let first = deadlines
            .iter()
            .filter(|d| d.at <= now)
            .min_by_key(|d| d.at);
        // Capacity taken back before now ends the session there: not charged past it.
        if let Some((at, why)) = self.preempted(&record).await
            && first.is_none_or(|d| at < d.at)
        {
            self.preempt(record, at, why, now).await?;
            return Ok(Some(StopReason::Preempted));
        }
        if let Some(first) = first {
            self.finish(record, first.reason, first.at, now).await?;
            return Ok(Some(first.reason));
        }
        // Files the session wrote itself passed no quota check: this one stops it.
        if let Some(over) = self
            .engine
            .storage()
            .over_quota(record.session.workspace_id)
            .await?
        {
            tracing::info!(session = %record.session.id, over, "the workspace's files went over the storage quota");
            self.finish(record, StopReason::StorageQuota, now, now)
                .await?;
            return Ok(Some(StopReason::StorageQuota));
        }

        let id = record.session.id;
        let settings = &self.engine.config().sessions;
        let (end_ms, charged) = self.charge_until(&record, now).await?;
        let mut next = record.clone();
        next.version += 1;
        next.session.cost_micros += charged;
        next.billed_ms = end_ms;
        next.tick = record.tick + 1;
        next.hold = match self.place_hold(&next.session, next.tick, now).await {
            Ok(hold) => hold,
            Err(e) if e.kind() == ErrorKind::InsufficientCredits => {
                // Paid up to now; it cannot run on credit it does not have. `finish` writes
                // this tick's state with the stop, in one conditional update.
                next.version = record.version;
                next.hold = None;
                self.charged_event(&next, charged).await;
                self.finish(next, StopReason::CreditsExhausted, now, now)
                    .await?;
                return Ok(Some(StopReason::CreditsExhausted));
            }
            Err(e) => return Err(e),
        };
        let window = settings.billing_window();
        next.covered_until = Some(now + window);
        next.next_check_at = Some(next_check(
            &next.session,
            started,
            now,
            settings.check_interval(),
        ));

        // Warnings, once each, before a limit stops the session.
        let lead = settings.warning_lead();
        let mut warnings = Vec::new();
        for d in &deadlines {
            let left = d.at - now;
            let bit = d.warning.bit();
            if left <= lead {
                if next.warned & bit == 0 {
                    next.warned |= bit;
                    warnings.push((d.warning, left.num_seconds(), d.reason));
                }
            } else {
                // Activity pushed an idle deadline back: warn again next time it nears.
                next.warned &= !bit;
            }
        }
        let available = self
            .engine
            .database()
            .ledger()
            .balance(next.session.owner_id)
            .await?
            .available;
        let low = Warning::CreditsLow.bit();
        let window_cost = cost_of(next.session.rate_micros_per_hour, window.num_milliseconds());
        if available < window_cost && next.hold.is_some() {
            if next.warned & low == 0 {
                next.warned |= low;
                let seconds_left = window.num_seconds();
                warnings.push((
                    Warning::CreditsLow,
                    seconds_left,
                    StopReason::CreditsExhausted,
                ));
            }
        } else {
            next.warned &= !low;
        }

        let wrote = self.engine.database().sessions().update(&next).await?;
        if !wrote {
            return Err(Error::conflict("the session changed during its tick"));
        }
        self.charged_event(&next, charged).await;
        for (warning, seconds_left, reason) in warnings {
            self.sessions()
                .event(
                    id,
                    SessionEventKind::Warning {
                        warning,
                        seconds_left,
                    },
                    format!(
                        "the session stops in about {} ({})",
                        human_duration(seconds_left),
                        reason.as_str()
                    ),
                )
                .await;
        }
        Ok(None)
    }

    /// Ends a session a restart left unfinished: `server_restart_reconciled`, charged up to its
    /// last tick (the time since cannot be proven), or `failed` when it never got to run.
    pub(crate) async fn reconcile(
        &self,
        mut record: SessionRecord,
        now: DateTime<Utc>,
    ) -> Result<StopReason> {
        let (reason, bill_until) = match (record.session.status, record.session.started_at) {
            (SessionStatus::Running | SessionStatus::Stopping, Some(started)) => (
                StopReason::ServerRestartReconciled,
                started + Duration::milliseconds(record.billed_ms),
            ),
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

/// `90` → `1 min 30 s`.
fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}
