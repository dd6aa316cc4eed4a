//! Sessions on real local compute, billed and stopped by the monitor on a simulated clock, on
//! SQLite and PostgreSQL.
//!
//! For every stop reason: the session stops at the first monitor pass at or after the moment
//! the limit is reached (within one tick); the charge is `cost_of(rate, running time)` exactly,
//! and equals the sum of the session's ledger posts; no credit stays held; the event trail is
//! complete; and no process of the session survives.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "local-compute"))]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use onmemos_backends::compute::LocalCompute;
use onmemos_backends::db::SqlDatabase;
use onmemos_backends::testing::fresh_postgres_url;
use onmemos_core::api::{CreateSession, CreateUser, CreateWorkspace, ExecCommand, LimitOverrides};
use onmemos_core::clock::{Clock, ManualClock};
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::model::{
    GrantSource, LedgerOp, MicroCredits, Session, SessionEventKind, SessionStatus, StopReason,
    TransferId, Warning, cost_of,
};
use onmemos_core::monitor::PassReport;
use onmemos_core::ports::ComputeProvider;
use onmemos_core::ports::Database;
use onmemos_core::ports::compute::{
    ComputeCapabilities, ComputeStatus, ExecRequest, ExecStream, PtyConnection, PtySize,
    ResourceUsage, SessionSpec, WorkspaceSpec,
};
use onmemos_core::{Engine, EngineConfig, ErrorKind, Principal, SessionSettings};

const INTERVAL_S: i64 = 10;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

struct World {
    engine: Engine,
    clock: Arc<ManualClock>,
    user: Principal,
    workspace: WorkspaceId,
    db: Arc<dyn Database>,
    root: std::path::PathBuf,
}

fn config() -> EngineConfig {
    EngineConfig {
        sessions: SessionSettings {
            check_interval_ms: 10_000,
            billing_window_secs: 60,
            warning_lead_secs: 30,
            lease_secs: 5,
            node: Some("node-a".into()),
            ..SessionSettings::default()
        },
        ..EngineConfig::default()
    }
}

async fn engine_over(
    db: Arc<dyn Database>,
    clock: Arc<ManualClock>,
    root: &std::path::Path,
) -> Engine {
    engine_on(db, clock, Arc::new(LocalCompute::unsandboxed(root))).await
}

async fn engine_on(
    db: Arc<dyn Database>,
    clock: Arc<ManualClock>,
    compute: Arc<dyn ComputeProvider>,
) -> Engine {
    Engine::builder(db)
        .with_clock(clock)
        .with_compute(compute)
        .with_config(config())
        .build()
        .await
        .unwrap_or_else(|e| panic!("engine: {e}"))
}

async fn world(db: SqlDatabase, credits: MicroCredits) -> World {
    let db: Arc<dyn Database> = Arc::new(db);
    let clock = Arc::new(ManualClock::new(t0()));
    let root = tempfile::tempdir()
        .unwrap_or_else(|e| panic!("tempdir: {e}"))
        .keep();
    let engine = engine_over(db.clone(), clock.clone(), &root).await;
    let (user, workspace) = common::member_with_workspace(&engine, "lab", credits).await;
    World {
        engine,
        clock,
        user,
        workspace,
        db,
        root,
    }
}

impl World {
    async fn start(&self, limits: LimitOverrides) -> Session {
        self.engine
            .sessions()
            .create(
                &self.user,
                CreateSession {
                    workspace_id: self.workspace,
                    template: "python".into(),
                    limits,
                    placement: Default::default(),
                    env: Default::default(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create: {e}"))
    }

    /// Advances the clock one interval at a time, running a monitor pass after each, until the
    /// session stops; returns it and the time of the pass that stopped it.
    async fn run_until_stopped(
        &self,
        id: SessionId,
        max_passes: usize,
    ) -> (Session, DateTime<Utc>) {
        self.run_until_stopped_while(id, max_passes, false).await
    }

    /// The same, recording activity on the session before each pass when `busy`.
    async fn run_until_stopped_while(
        &self,
        id: SessionId,
        max_passes: usize,
        busy: bool,
    ) -> (Session, DateTime<Utc>) {
        let monitor = self.engine.monitor();
        for _ in 0..max_passes {
            self.clock.advance(Duration::seconds(INTERVAL_S));
            if busy {
                self.engine.sessions().touch(id).await;
            }
            let report = monitor
                .run_once()
                .await
                .unwrap_or_else(|e| panic!("pass: {e}"));
            assert_eq!(report.errors, 0, "a monitor pass failed: {report:?}");
            let s = self.stored(id).await;
            if s.is_finished() {
                return (s, self.clock.now());
            }
        }
        panic!("session {id} did not stop within {max_passes} passes");
    }

    /// The session as stored, without counting as activity.
    /// Starts a new server over the same database and directory (the old one's processes
    /// live on), runs its reconciliation, checks that it stopped just `id` for the restart, and
    /// returns the stopped session and the report.
    async fn restart(&self, id: SessionId, name: &str) -> (Session, PassReport) {
        let restarted = engine_over(self.db.clone(), self.clock.clone(), &self.root).await;
        let report = restarted
            .monitor()
            .reconcile_after_restart()
            .await
            .unwrap_or_else(|e| panic!("{name}: reconcile: {e}"));
        assert_eq!(
            report.stopped,
            vec![(id, StopReason::ServerRestartReconciled)],
            "{name}"
        );
        (self.stored(id).await, report)
    }

    async fn stored(&self, id: SessionId) -> Session {
        self.db
            .sessions()
            .get(self.user.user_id(), id)
            .await
            .unwrap_or_else(|e| panic!("get: {e}"))
            .unwrap_or_else(|| panic!("session {id} vanished"))
    }

    /// The session stopped for `reason` at the first pass at or after `deadline`.
    fn check_stopped_in_time(
        name: &str,
        stopped: &Session,
        at: DateTime<Utc>,
        deadline: DateTime<Utc>,
        reason: StopReason,
    ) {
        assert_eq!(stopped.stop_reason, Some(reason), "{name}");
        assert!(
            at >= deadline && at - deadline < Duration::seconds(INTERVAL_S),
            "{name}: stopped at {at}, the deadline was {deadline}"
        );
    }

    /// Checks the money: the charge is the cost of `ran_ms` at the session's rate, the ledger's
    /// posts for the session add up to it, and nothing is held.
    async fn check_charge(&self, s: &Session, ran_ms: i64) {
        assert_eq!(
            s.cost_micros,
            cost_of(s.rate_micros_per_hour, ran_ms),
            "charge of {ran_ms} ms at {} per hour",
            s.rate_micros_per_hour
        );
        let prefix = format!("{}.", s.id);
        let posted: MicroCredits = common::all_posts(self.db.as_ref())
            .await
            .iter()
            .filter(|t| t.id.as_str().starts_with(&prefix))
            .map(|t| t.amount)
            .sum();
        assert_eq!(posted, s.cost_micros, "ledger posts against the session");
        common::check_paid(self.db.as_ref(), self.user.user_id(), s.cost_micros).await;
    }

    async fn events(&self, id: SessionId) -> Vec<SessionEventKind> {
        common::event_kinds(&self.engine, &self.user, id).await
    }

    /// The trail starts created → started, has every tick's charge, and ends with the stop.
    async fn check_trail(&self, s: &Session, warning: Option<Warning>) {
        let events = self.events(s.id).await;
        assert!(
            matches!(events.first(), Some(SessionEventKind::Created { .. })),
            "{events:?}"
        );
        assert!(
            matches!(events.get(1), Some(SessionEventKind::Started)),
            "{events:?}"
        );
        let charged_in_ticks: MicroCredits = events
            .iter()
            .filter_map(|e| match e {
                SessionEventKind::Charged { amount_micros, .. } => Some(*amount_micros),
                _ => None,
            })
            .sum();
        let Some(SessionEventKind::Stopped {
            reason,
            cost_micros,
        }) = events.last()
        else {
            panic!("the trail does not end with the stop: {events:?}");
        };
        assert_eq!(Some(*reason), s.stop_reason);
        assert_eq!(*cost_micros, s.cost_micros);
        assert!(charged_in_ticks <= s.cost_micros);
        if let Some(w) = warning {
            assert!(
                events.iter().any(
                    |e| matches!(e, SessionEventKind::Warning { warning, .. } if *warning == w)
                ),
                "no {w:?} warning before the stop: {events:?}"
            );
        }
    }

    /// No process of the session is alive (checked in /proc).
    fn check_no_processes(&self, id: SessionId) {
        let alive = onmemos_backends::testing::session_processes(&id.to_string());
        assert!(alive.is_empty(), "processes of {id} survived: {alive:?}");
    }
}

fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (b - a).num_milliseconds()
}

#[tokio::test]
async fn duration_limit_stops_within_one_tick_and_charges_exactly() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        let s = w
            .start(LimitOverrides {
                max_duration_secs: Some(125),
                ..Default::default()
            })
            .await;
        let started = s.started_at.unwrap_or_default();
        // Keep it busy so only the duration can stop it.
        let (stopped, at) = w.run_until_stopped_while(s.id, 20, true).await;
        let deadline = started + Duration::seconds(125);
        World::check_stopped_in_time(name, &stopped, at, deadline, StopReason::DurationLimit);
        w.check_charge(&stopped, 125_000).await;
        w.check_trail(&stopped, Some(Warning::DurationLimit)).await;
        w.check_no_processes(s.id);
    }
}

#[tokio::test]
async fn cost_limit_stops_at_the_limit_and_never_charges_past_it() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        let s = w
            .start(LimitOverrides {
                max_cost_micros: Some(1_000),
                ..Default::default()
            })
            .await;
        let started = s.started_at.unwrap_or_default();
        let (stopped, at) = w.run_until_stopped(s.id, 20).await;
        // 50,000 per hour: 1,000 micro-credits buy 72,000 ms.
        let ms = 1_000 * 3_600_000 / s.rate_micros_per_hour;
        let deadline = started + Duration::milliseconds(ms);
        World::check_stopped_in_time(name, &stopped, at, deadline, StopReason::CostLimit);
        w.check_charge(&stopped, ms).await;
        assert!(
            stopped.cost_micros <= 1_000,
            "{name}: {}",
            stopped.cost_micros
        );
        w.check_trail(&stopped, Some(Warning::CostLimit)).await;
        w.check_no_processes(s.id);
    }
}

#[tokio::test]
async fn a_limit_stops_its_session_at_its_deadline_not_at_the_next_pass() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        let s = w
            .start(LimitOverrides {
                max_cost_micros: Some(1_000),
                ..Default::default()
            })
            .await;
        let started = s.started_at.unwrap_or_default();
        // 1,000 micro-credits at 50,000 per hour: 72,000 ms, between the passes at 70 and 80 s.
        let deadline = started + Duration::milliseconds(1_000 * 3_600_000 / s.rate_micros_per_hour);
        let monitor = w.engine.monitor();
        while w.clock.now() + Duration::seconds(INTERVAL_S) < deadline {
            w.clock.advance(Duration::seconds(INTERVAL_S));
            monitor
                .run_once()
                .await
                .unwrap_or_else(|e| panic!("pass: {e}"));
        }
        assert_eq!(
            w.db.sessions().next_due().await.ok().flatten(),
            Some(deadline),
            "{name}: the session is due at its deadline"
        );
        w.clock.advance(deadline - w.clock.now());
        let report = monitor
            .run_once()
            .await
            .unwrap_or_else(|e| panic!("pass: {e}"));
        assert_eq!(
            report.stopped,
            vec![(s.id, StopReason::CostLimit)],
            "{name}"
        );
        let stopped = w.stored(s.id).await;
        assert_eq!(stopped.stopped_at, Some(deadline), "{name}");
        assert_eq!(stopped.cost_micros, 1_000, "{name}");
        w.check_charge(&stopped, ms_between(started, deadline))
            .await;
        assert_eq!(
            w.db.sessions().next_due().await.ok().flatten(),
            None,
            "{name}"
        );
    }
}

#[tokio::test]
async fn cost_limits_below_one_billing_step_are_refused() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        // python: 50,000 micro-credits per hour; one 10 s step costs 139.
        let step = cost_of(50_000, INTERVAL_S * 1000);
        for limit in [0, 1, step - 1] {
            let refused = w
                .engine
                .sessions()
                .create(
                    &w.user,
                    CreateSession {
                        workspace_id: w.workspace,
                        template: "python".into(),
                        limits: LimitOverrides {
                            max_cost_micros: Some(limit),
                            ..Default::default()
                        },
                        placement: Default::default(),
                        env: Default::default(),
                    },
                )
                .await
                .err()
                .unwrap_or_else(|| panic!("{name}: a cost limit of {limit} was accepted"));
            assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{name}: {refused}");
            assert_eq!(refused.field(), Some("limits.max_cost_micros"), "{name}");
            assert!(refused.message().contains(&step.to_string()), "{refused}");
        }
        let s = w
            .start(LimitOverrides {
                max_cost_micros: Some(step),
                ..Default::default()
            })
            .await;
        assert_eq!(s.status, SessionStatus::Running, "{name}");
        w.engine
            .sessions()
            .stop(&w.user, s.id)
            .await
            .unwrap_or_else(|e| panic!("stop: {e}"));
    }
}

#[tokio::test]
async fn idle_timeout_stops_an_idle_session_and_activity_defers_it() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        let s = w
            .start(LimitOverrides {
                idle_timeout_secs: Some(60),
                ..Default::default()
            })
            .await;
        // Activity at +30 s moves the deadline to +90 s.
        w.clock.advance(Duration::seconds(30));
        let out = w
            .engine
            .sessions()
            .exec(
                &w.user,
                s.id,
                ExecCommand {
                    command: vec!["echo".into(), "busy".into()],
                    env: Default::default(),
                    stdin: None,
                    timeout_secs: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: exec: {e}"));
        assert_eq!(out.stdout, "busy\n");
        let active_at = w.clock.now();
        let (stopped, at) = w.run_until_stopped(s.id, 20).await;
        let deadline = active_at + Duration::seconds(60);
        World::check_stopped_in_time(name, &stopped, at, deadline, StopReason::IdleTimeout);
        let started = s.started_at.unwrap_or_default();
        w.check_charge(&stopped, ms_between(started, deadline))
            .await;
        w.check_trail(&stopped, Some(Warning::IdleTimeout)).await;
        w.check_no_processes(s.id);
    }
}

#[tokio::test]
async fn credits_exhausted_stops_the_session_when_the_hold_cannot_be_extended() {
    for (name, db) in common::databases().await {
        // 2,000 micro-credits; each hold is 834 (one minute at 50,000 per hour).
        let w = world(db, 2_000).await;
        let s = w.start(LimitOverrides::default()).await;
        let started = s.started_at.unwrap_or_default();
        let (stopped, at) = w.run_until_stopped_while(s.id, 30, true).await;
        assert_eq!(
            stopped.stop_reason,
            Some(StopReason::CreditsExhausted),
            "{name}"
        );
        // It stops at the first tick where the rest no longer covers a window.
        let ran = ms_between(started, at);
        let rate = s.rate_micros_per_hour;
        let window = cost_of(rate, 60_000);
        assert!(
            2_000 - cost_of(rate, ran) < window,
            "{name}: stopped too late"
        );
        assert!(
            2_000 - cost_of(rate, ran - INTERVAL_S * 1000) >= window,
            "{name}: stopped a tick too early"
        );
        w.check_charge(&stopped, ran).await;
        w.check_trail(&stopped, Some(Warning::CreditsLow)).await;
        w.check_no_processes(s.id);
        // Never more than was there.
        let balance =
            w.db.ledger()
                .balance(w.user.user_id())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(balance.available >= 0);
    }
}

#[tokio::test]
async fn a_user_stop_charges_up_to_now_and_is_idempotent() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        let s = w.start(LimitOverrides::default()).await;
        let monitor = w.engine.monitor();
        for _ in 0..3 {
            w.clock.advance(Duration::seconds(INTERVAL_S));
            monitor.run_once().await.unwrap_or_else(|e| panic!("{e}"));
        }
        w.clock.advance(Duration::milliseconds(4_321));
        let stopped = w
            .engine
            .sessions()
            .stop(&w.user, s.id)
            .await
            .unwrap_or_else(|e| panic!("{name}: stop: {e}"));
        assert_eq!(stopped.stop_reason, Some(StopReason::User));
        assert_eq!(stopped.status, SessionStatus::Stopped);
        w.check_charge(&stopped, 34_321).await;
        w.check_trail(&stopped, None).await;
        w.check_no_processes(s.id);
        let again = w
            .engine
            .sessions()
            .stop(&w.user, s.id)
            .await
            .unwrap_or_else(|e| panic!("{name}: second stop: {e}"));
        assert_eq!(again, stopped, "{name}: a second stop changed the session");
        // Exec on a stopped session is a conflict, and changes nothing.
        let err = w
            .engine
            .sessions()
            .exec(
                &w.user,
                s.id,
                ExecCommand {
                    command: vec!["true".into()],
                    env: Default::default(),
                    stdin: None,
                    timeout_secs: None,
                },
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: exec on a stopped session ran"));
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(w.stored(s.id).await, stopped);
    }
}

#[tokio::test]
async fn a_shell_that_exits_ends_the_session_and_charges_up_to_the_pass() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        // A clean `exit` is the user ending the session; any other code is a failure.
        for (typed, reason, failure) in [
            (&b"exit 3\n"[..], StopReason::Failed, Some("code 3")),
            (&b"exit\n"[..], StopReason::User, None),
        ] {
            let s = w.start(LimitOverrides::default()).await;
            let (_, pty) = w
                .engine
                .sessions()
                .attach(&w.user, s.id, PtySize { rows: 24, cols: 80 })
                .await
                .unwrap_or_else(|e| panic!("{name}: attach: {e}"));
            pty.write(typed)
                .await
                .unwrap_or_else(|e| panic!("{name}: write: {e}"));
            // Wait (in real time) for the shell to go.
            while pty.read().await.ok().flatten().is_some() {}
            let started = s.started_at.unwrap_or_default();
            let paid_before =
                w.db.ledger()
                    .balance(w.user.user_id())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .counters
                    .debits_posted;
            let (stopped, at) = w.run_until_stopped(s.id, 3).await;
            assert_eq!(stopped.stop_reason, Some(reason), "{name}");
            match failure {
                Some(text) => {
                    assert_eq!(stopped.status, SessionStatus::Failed);
                    assert!(
                        stopped
                            .failure
                            .as_deref()
                            .unwrap_or_default()
                            .contains(text),
                        "{name}: {:?}",
                        stopped.failure
                    );
                }
                None => assert_eq!(stopped.status, SessionStatus::Stopped),
            }
            assert_eq!(
                stopped.cost_micros,
                cost_of(stopped.rate_micros_per_hour, ms_between(started, at)),
                "{name}"
            );
            let paid_after =
                w.db.ledger()
                    .balance(w.user.user_id())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .counters;
            assert_eq!(paid_after.debits_posted - paid_before, stopped.cost_micros);
            assert_eq!(paid_after.debits_pending, 0);
            w.check_trail(&stopped, None).await;
            w.check_no_processes(s.id);
        }
    }
}

#[tokio::test]
async fn a_restarted_server_reconciles_its_sessions_and_kills_their_processes() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        let s = w.start(LimitOverrides::default()).await;
        let started = s.started_at.unwrap_or_default();
        let monitor = w.engine.monitor();
        for _ in 0..2 {
            w.clock.advance(Duration::seconds(INTERVAL_S));
            monitor.run_once().await.unwrap_or_else(|e| panic!("{e}"));
        }
        let last_tick = w.clock.now();
        w.clock.advance(Duration::seconds(7));
        let (stopped, report) = w.restart(s.id, name).await;
        assert_eq!(
            stopped.stop_reason,
            Some(StopReason::ServerRestartReconciled)
        );
        // Charged up to the last tick, not for the time nobody watched.
        w.check_charge(&stopped, ms_between(started, last_tick))
            .await;
        w.check_trail(&stopped, None).await;
        w.check_no_processes(s.id);
        assert!(report.orphans_killed <= 1);
    }
}

/// A server killed after a tick's ledger batch committed but before the tick's record did
/// leaves the hold that tick placed named by no record: the reconciliation releases it, and
/// the charge the ledger took for that tick stands (it is replayed, never taken twice).
#[tokio::test]
async fn a_restart_releases_the_hold_of_a_tick_cut_off_before_its_record() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        let s = w.start(LimitOverrides::default()).await;
        let started = s.started_at.unwrap_or_default();
        w.clock.advance(Duration::seconds(INTERVAL_S));
        w.engine
            .monitor()
            .run_once()
            .await
            .unwrap_or_else(|e| panic!("{name}: pass: {e}"));
        // The ledger half of the next tick, as it committed before the kill.
        w.clock.advance(Duration::seconds(INTERVAL_S));
        let cut_at = w.clock.now();
        let record =
            w.db.sessions()
                .record(s.id)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name}: no record"));
        let hold = record
            .hold
            .clone()
            .unwrap_or_else(|| panic!("{name}: the session holds nothing"));
        let id = |step: &str, k: u64| {
            TransferId::try_from(format!("{}.{step}.{k}", s.id)).unwrap_or_else(|e| panic!("{e}"))
        };
        let ops = [
            LedgerOp::Post {
                id: id("settle", record.tick),
                hold,
                amount: cost_of(s.rate_micros_per_hour, ms_between(started, cut_at))
                    - record.session.cost_micros,
            },
            LedgerOp::Hold {
                id: id("hold", record.tick + 1),
                user: s.owner_id,
                amount: cost_of(s.rate_micros_per_hour, 60_000),
                timeout_at: cut_at + Duration::seconds(120),
                reference: Some(format!("session {}", s.id)),
            },
        ];
        let outcomes =
            w.db.ledger()
                .apply_batch(&ops, cut_at)
                .await
                .unwrap_or_else(|e| panic!("{name}: batch: {e}"));
        assert!(outcomes.iter().all(Result::is_ok), "{name}: {outcomes:?}");
        w.clock.advance(Duration::seconds(7));
        let (stopped, _) = w.restart(s.id, name).await;
        // Charged up to the cut tick, which the ledger took; nothing is left held.
        w.check_charge(&stopped, ms_between(started, cut_at)).await;
        w.check_no_processes(s.id);
    }
}

#[tokio::test]
async fn a_start_without_credits_fails_cleanly_and_holds_nothing() {
    for (name, db) in common::databases().await {
        let w = world(db, 100).await;
        let err = w
            .engine
            .sessions()
            .create(
                &w.user,
                CreateSession {
                    workspace_id: w.workspace,
                    template: "python".into(),
                    limits: Default::default(),
                    placement: Default::default(),
                    env: Default::default(),
                },
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: started without credits"));
        assert_eq!(err.kind(), ErrorKind::InsufficientCredits, "{name}");
        let id: SessionId = err
            .context_value("session")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: the error names no session: {err:?}"));
        let failed = w.stored(id).await;
        assert_eq!(failed.status, SessionStatus::Failed);
        assert_eq!(failed.stop_reason, Some(StopReason::Failed));
        assert!(failed.failure.is_some());
        let balance =
            w.db.ledger()
                .balance(w.user.user_id())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (balance.counters.debits_pending, balance.available),
            (0, 100),
            "{name}"
        );
        w.check_no_processes(id);
        // Unknown template and limits out of bounds: named, and nothing is created.
        for (template, limits, field) in [
            ("no-such-template", LimitOverrides::default(), "template"),
            (
                "python",
                LimitOverrides {
                    max_duration_secs: Some(10),
                    ..Default::default()
                },
                "limits.max_duration_secs",
            ),
            (
                "python",
                LimitOverrides {
                    idle_timeout_secs: Some(30 * 24 * 3600),
                    ..Default::default()
                },
                "limits.idle_timeout_secs",
            ),
        ] {
            let err = w
                .engine
                .sessions()
                .create(
                    &w.user,
                    CreateSession {
                        workspace_id: w.workspace,
                        template: template.into(),
                        limits,
                        placement: Default::default(),
                        env: Default::default(),
                    },
                )
                .await
                .err()
                .unwrap_or_else(|| panic!("{name}: {template} {limits:?} was accepted"));
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {err}");
            assert_eq!(err.field(), Some(field), "{name}: {err}");
        }
        let all = w
            .engine
            .sessions()
            .list(&w.user, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            all.items.len(),
            1,
            "{name}: only the failed start is listed"
        );
    }
}

#[tokio::test]
async fn estimates_learn_percentiles_from_finished_sessions_and_offer_cheaper_options() {
    use onmemos_core::api::{
        CompareRequest, Confidence, EstimateRequest, HistorySource, TemplateListParams,
        TemplateSort,
    };
    use onmemos_core::model::{Placement, Resources};
    for (name, db) in common::databases().await {
        let w = world(db, 100_000_000).await;
        let durations = [300, 60, 600, 120, 240, 180];
        let mut rate = 0;
        for secs in durations {
            let s = w.start(LimitOverrides::default()).await;
            rate = s.rate_micros_per_hour;
            w.clock.advance(Duration::seconds(secs));
            w.engine
                .sessions()
                .stop(&w.user, s.id)
                .await
                .unwrap_or_else(|e| panic!("{name}: stop: {e}"));
        }
        let quote =
            |template: Option<&str>, resources: Option<Resources>, secs: u64| EstimateRequest {
                template: template.map(str::to_owned),
                resources,
                duration_secs: secs,
                placement: Placement::OnDemand,
            };
        let e = w
            .engine
            .estimates()
            .quote(&w.user, quote(Some("python"), None, 3600))
            .await
            .unwrap_or_else(|e| panic!("{name}: quote: {e}"));
        assert_eq!(e.rate_micros_per_hour, rate);
        assert_eq!(
            e.expected_cost_micros, rate,
            "{name}: one hour costs the hourly rate"
        );
        assert_eq!((e.history, e.samples), (HistorySource::User, 6), "{name}");
        assert_eq!(e.confidence, Confidence::Medium);
        // Nearest rank over 60, 120, 180, 240, 300, 600 s: p50 = 180 s, p90 = 600 s.
        assert_eq!(e.p50_cost_micros, cost_of(rate, 180_000), "{name}");
        assert_eq!(e.p90_cost_micros, cost_of(rate, 600_000), "{name}");
        assert!(e.affordable);
        assert!(!e.alternatives.is_empty());
        for pair in e.alternatives.windows(2) {
            assert!(pair[0].expected_cost_micros <= pair[1].expected_cost_micros);
        }
        for a in &e.alternatives {
            assert_eq!(
                a.saving_micros,
                e.expected_cost_micros - a.expected_cost_micros
            );
            assert!(a.saving_micros > 0);
            // Local compute has no spot capacity: offered, but marked unavailable.
            assert_eq!(a.available, a.placement == Placement::OnDemand, "{a:?}");
        }

        let small = Resources {
            cpu_millis: 250,
            memory_mib: 256,
            gpu: 0,
            disk_gib: 1,
        };
        let cmp = w
            .engine
            .estimates()
            .compare(
                &w.user,
                CompareRequest {
                    configurations: vec![
                        quote(Some("python"), None, 3600),
                        quote(None, Some(small), 3600),
                    ],
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: compare: {e}"));
        assert_eq!(cmp.cheapest, 1);
        assert_eq!(cmp.estimates[1].history, HistorySource::None);
        assert_eq!(cmp.estimates[1].confidence, Confidence::Low);

        for (request, field) in [
            (quote(None, None, 3600), "template"),
            (quote(Some("python"), None, 10), "duration_secs"),
            (quote(Some("fortran"), None, 3600), "template"),
        ] {
            let err = w
                .engine
                .estimates()
                .quote(&w.user, request)
                .await
                .err()
                .unwrap_or_else(|| panic!("{name}: a bad estimate was accepted"));
            assert_eq!(err.field(), Some(field), "{name}: {err}");
        }

        // Usage counts: python was used six times and leads the popular list.
        let popular = w
            .engine
            .templates()
            .list(
                &w.user,
                &TemplateListParams {
                    sort: Some(TemplateSort::Popular),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: templates: {e}"));
        assert_eq!(popular.items[0].name, "python");
        assert!(popular.items[0].usage_count >= 6, "{name}");
        assert!(
            popular.items[1..]
                .iter()
                .all(|t| t.usage_count <= popular.items[0].usage_count)
        );
    }
}

/// Two replicas (each its own engine, pool, node and local compute) over one PostgreSQL, their
/// monitors racing on the same simulated clock over 50 sessions: every tick of every session is
/// charged exactly once, the load is shared, and the ledger reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgres_charge_every_tick_exactly_once() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let open = || async {
        Arc::new(
            SqlDatabase::open(&url)
                .await
                .unwrap_or_else(|e| panic!("postgres: {e}")),
        ) as Arc<dyn Database>
    };
    let clock = Arc::new(ManualClock::new(t0()));
    let replica = |db: Arc<dyn Database>, node: &'static str| {
        let clock = clock.clone();
        async move {
            let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")).keep();
            let mut config = config();
            config.sessions.node = Some(node.into());
            Engine::builder(db)
                .with_clock(clock)
                .with_compute(Arc::new(LocalCompute::unsandboxed(root)))
                .with_config(config)
                .build()
                .await
                .unwrap_or_else(|e| panic!("engine: {e}"))
        }
    };
    let a = replica(open().await, "replica-a").await;
    let b = replica(open().await, "replica-b").await;
    let created = a
        .users()
        .bootstrap(CreateUser {
            email: "fleet@example.com".into(),
            name: None,
            role: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let user = Principal::for_user(&created.user);
    a.credits()
        .execute(&LedgerOp::Grant {
            id: TransferId::random("grant"),
            user: user.user_id(),
            amount: 1_000_000_000,
            source: GrantSource::Purchase,
            priority: 0,
            expires_at: None,
            reference: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ws = a
        .workspaces()
        .create(
            &user,
            CreateWorkspace {
                name: "fleet".into(),
                description: None,
                env: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let mut ids = Vec::new();
    for i in 0..50 {
        let engine = if i % 2 == 0 { &a } else { &b };
        let s = engine
            .sessions()
            .create(
                &user,
                CreateSession {
                    workspace_id: ws,
                    template: "python".into(),
                    limits: Default::default(),
                    placement: Default::default(),
                    env: Default::default(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create {i}: {e}"));
        ids.push(s.id);
    }
    let (mut ticked_a, mut ticked_b) = (0, 0);
    let (monitor_a, monitor_b) = (a.monitor(), b.monitor());
    for _ in 0..12 {
        clock.advance(Duration::seconds(INTERVAL_S));
        let (ra, rb) = tokio::join!(monitor_a.run_once(), monitor_b.run_once());
        let (ra, rb) = (
            ra.unwrap_or_else(|e| panic!("replica a: {e}")),
            rb.unwrap_or_else(|e| panic!("replica b: {e}")),
        );
        assert_eq!((ra.errors, rb.errors), (0, 0), "{ra:?} {rb:?}");
        ticked_a += ra.ticked;
        ticked_b += rb.ticked;
    }
    assert_eq!(
        ticked_a + ticked_b,
        50 * 12,
        "every session ticked once per pass"
    );
    assert!(
        ticked_a > 0 && ticked_b > 0,
        "one replica did all the work: {ticked_a} / {ticked_b}"
    );
    for (i, id) in ids.iter().enumerate() {
        let engine = if i % 2 == 0 { &a } else { &b };
        engine
            .sessions()
            .stop(&user, *id)
            .await
            .unwrap_or_else(|e| panic!("stop: {e}"));
    }
    let db = open().await;
    let mut posts: std::collections::HashMap<String, Vec<MicroCredits>> = Default::default();
    for t in common::all_posts(db.as_ref()).await {
        let session = t.id.as_str().split(".settle.").next().unwrap_or_default();
        posts.entry(session.to_owned()).or_default().push(t.amount);
    }
    for id in &ids {
        let s = db
            .sessions()
            .get(user.user_id(), *id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{id} vanished"));
        let charges = posts.get(&id.to_string()).cloned().unwrap_or_default();
        // One settlement per hold: 12 ticks and the stop.
        assert_eq!(charges.len(), 13, "{id}: {charges:?}");
        assert_eq!(charges.iter().sum::<MicroCredits>(), s.cost_micros, "{id}");
        let started = s.started_at.unwrap_or_default();
        let stopped = s.stopped_at.unwrap_or_default();
        assert_eq!(
            s.cost_micros,
            cost_of(s.rate_micros_per_hour, ms_between(started, stopped)),
            "{id}"
        );
    }
    let report = onmemos_core::ledger::reconcile(db.ledger())
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    assert!(report.drift.is_empty(), "ledger drift: {:?}", report.drift);
}

/// On the real clock: the running monitor wakes for a deadline that falls between two of its
/// passes and stops the session there, before the pass that would come next.
#[tokio::test]
async fn the_running_monitor_wakes_for_a_deadline_between_its_passes() {
    let Some((name, db)) = common::databases().await.into_iter().next() else {
        panic!("no database");
    };
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let interval_ms = 10_000;
    let engine = Engine::builder(Arc::new(db))
        .with_compute(Arc::new(LocalCompute::unsandboxed(root.path())))
        .with_config(EngineConfig {
            sessions: SessionSettings {
                check_interval_ms: interval_ms,
                ..config().sessions
            },
            ..config()
        })
        .build()
        .await
        .unwrap_or_else(|e| panic!("engine: {e}"));
    let (user, workspace) = common::member_with_workspace(&engine, "lab", 1_000_000).await;
    let mut events = engine.sessions().subscribe();
    let _monitor = engine.monitor().spawn();
    // 208 micro-credits at 50,000 per hour: 14,976 ms, half-way between the passes at 10 and
    // 20 s after the start.
    let s = engine
        .sessions()
        .create(
            &user,
            CreateSession {
                workspace_id: workspace,
                template: "python".into(),
                limits: LimitOverrides {
                    max_cost_micros: Some(208),
                    ..Default::default()
                },
                placement: Default::default(),
                env: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: create: {e}"));
    let started = s.started_at.unwrap_or_default();
    let deadline = started + Duration::milliseconds(208 * 3_600_000 / s.rate_micros_per_hour);
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Ok(e) if e.session_id == s.id => {
                    if let SessionEventKind::Stopped { reason, .. } = e.kind {
                        return (reason, e.at);
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name}: the session did not stop"));
    assert_eq!(stopped.0, StopReason::CostLimit, "{name}");
    let next_pass = started + Duration::milliseconds(2 * interval_ms as i64);
    assert!(
        stopped.1 >= deadline && stopped.1 < next_pass,
        "{name}: stopped at {}, the deadline was {deadline}, the next pass {next_pass}",
        stopped.1
    );
}

/// Reads the terminal until its output so far contains `needle`; everything read.
async fn read_until(terminal: &mut onmemos_core::services::Terminal, needle: &str) -> String {
    let mut seen = String::new();
    let read = async {
        while !seen.contains(needle) {
            match terminal.read().await {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(20), read)
        .await
        .is_err()
    {
        panic!("{needle:?} never came; the terminal showed {seen:?}");
    }
    assert!(
        seen.contains(needle),
        "the terminal closed before {needle:?}: {seen:?}"
    );
    seen
}

#[tokio::test]
async fn an_embedder_attaches_detaches_and_reattaches_to_a_terminal_without_http() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000).await;
        let s = w.start(LimitOverrides::default()).await;
        let size = PtySize { rows: 24, cols: 80 };
        let terminals = w.engine.terminals();

        let mut first = terminals
            .attach(&w.user, s.id, size, None)
            .await
            .unwrap_or_else(|e| panic!("{name}: attach: {e}"));
        first
            .write(b"KEPT=still-here; echo first-$((6*7))\n")
            .await
            .unwrap_or_else(|e| panic!("{name}: write: {e}"));
        read_until(&mut first, "first-42").await;
        let offset = first.offset();
        // Typed, then detached before its output is read: it lands in the scrollback.
        first
            .write(b"echo while-$((1+1))-away\n")
            .await
            .unwrap_or_else(|e| panic!("{name}: write: {e}"));
        drop(first);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        // Another tenant cannot reach it.
        let (stranger, _) = common::member_with_workspace(&w.engine, "other", 1_000_000).await;
        let refused = terminals.attach(&stranger, s.id, size, None).await;
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.kind()),
            Err(ErrorKind::NotFound),
            "{name}"
        );

        // Within the grace period: the same shell, replaying only what came after `offset`.
        let mut again = terminals
            .attach(&w.user, s.id, size, Some(offset))
            .await
            .unwrap_or_else(|e| panic!("{name}: re-attach: {e}"));
        assert_eq!(again.lost(), 0, "{name}");
        let replayed = read_until(&mut again, "while-2-away").await;
        assert!(
            !replayed.contains("first-42"),
            "{name}: replayed {replayed:?}"
        );
        again
            .write(b"echo $KEPT\n")
            .await
            .unwrap_or_else(|e| panic!("{name}: write: {e}"));
        read_until(&mut again, "still-here").await;
        assert!(again.offset() > offset, "{name}");

        // A stop closes the terminal: reads end, and the ending says why.
        w.engine
            .sessions()
            .stop(&w.user, s.id)
            .await
            .unwrap_or_else(|e| panic!("{name}: stop: {e}"));
        let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while again.read().await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "{name}: the terminal stayed open after the stop"
        );
        assert_eq!(terminals.ending(s.id).await.reason, "user", "{name}");
        w.check_no_processes(s.id);
    }
}

/// Local compute that, the first time a session's status is read (by the monitor's sweep,
/// after it read the sessions), first runs a hook: a session started in the middle of a sweep,
/// as a request can.
struct RacingCompute {
    inner: LocalCompute,
    hook: std::sync::Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

impl std::fmt::Debug for RacingCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RacingCompute").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ComputeProvider for RacingCompute {
    fn capabilities(&self) -> ComputeCapabilities {
        self.inner.capabilities()
    }
    async fn provision_workspace(&self, spec: &WorkspaceSpec) -> onmemos_core::Result<()> {
        self.inner.provision_workspace(spec).await
    }
    async fn teardown_workspace(&self, workspace: WorkspaceId) -> onmemos_core::Result<()> {
        self.inner.teardown_workspace(workspace).await
    }
    async fn start_session(&self, spec: &SessionSpec) -> onmemos_core::Result<()> {
        self.inner.start_session(spec).await
    }
    async fn stop_session(&self, session: SessionId) -> onmemos_core::Result<()> {
        self.inner.stop_session(session).await
    }
    async fn exec(
        &self,
        session: SessionId,
        request: ExecRequest,
    ) -> onmemos_core::Result<ExecStream> {
        self.inner.exec(session, request).await
    }
    async fn attach_pty(
        &self,
        session: SessionId,
        size: PtySize,
    ) -> onmemos_core::Result<Box<dyn PtyConnection>> {
        self.inner.attach_pty(session, size).await
    }
    async fn status(&self, session: SessionId) -> onmemos_core::Result<ComputeStatus> {
        let hook = self.hook.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(hook) = hook {
            hook.await;
        }
        self.inner.status(session).await
    }
    async fn usage(&self, session: SessionId) -> onmemos_core::Result<ResourceUsage> {
        self.inner.usage(session).await
    }
    async fn running_sessions(&self) -> onmemos_core::Result<Vec<SessionId>> {
        self.inner.running_sessions().await
    }
}

/// A session started while the monitor sweeps — after the sweep read the sessions, before it
/// looks for processes no session owns — is not taken for an orphan: its processes live on.
#[tokio::test]
async fn a_session_started_during_a_sweep_is_not_killed_as_an_orphan() {
    for (name, db) in common::databases().await {
        let db: Arc<dyn Database> = Arc::new(db);
        let clock = Arc::new(ManualClock::new(t0()));
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let compute = Arc::new(RacingCompute {
            inner: LocalCompute::unsandboxed(root.path()),
            hook: std::sync::Mutex::new(None),
        });
        let engine = engine_on(db.clone(), clock.clone(), compute.clone()).await;
        let (user, workspace) = common::member_with_workspace(&engine, "race", 1_000_000).await;
        let create = CreateSession {
            workspace_id: workspace,
            template: "python".into(),
            limits: LimitOverrides::default(),
            placement: Default::default(),
            env: Default::default(),
        };
        let first = engine
            .sessions()
            .create(&user, create.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: create: {e}"));
        // The sweep reads `first`'s status after reading the sessions: a second one starts then.
        let (racer, started) = tokio::sync::oneshot::channel();
        let (engine2, user2) = (engine.clone(), user.clone());
        *compute.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::pin(async move {
            let s = engine2
                .sessions()
                .create(&user2, create)
                .await
                .unwrap_or_else(|e| panic!("create during the sweep: {e}"));
            let _ = racer.send(s.id);
        }));
        clock.advance(Duration::seconds(INTERVAL_S));
        let report = engine
            .monitor()
            .run_once()
            .await
            .unwrap_or_else(|e| panic!("{name}: pass: {e}"));
        let second = started
            .await
            .unwrap_or_else(|_| panic!("{name}: the sweep never read a status"));
        assert_eq!(report.orphans_killed, 0, "{name}: {report:?}");
        let running = compute
            .running_sessions()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for id in [first.id, second] {
            assert!(
                running.contains(&id),
                "{name}: the processes of {id} were killed"
            );
            engine
                .sessions()
                .stop(&user, id)
                .await
                .unwrap_or_else(|e| panic!("{name}: stop: {e}"));
        }
    }
}
