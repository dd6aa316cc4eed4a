//! Sessions through the engine on `KubernetesCompute`, on the stand-in (these tests script
//! the cluster: interruptions, pull failures, faults), on SQLite and PostgreSQL: what a pod's
//! fate does to its session's state and money.
#![cfg(all(feature = "kubernetes", feature = "sqlite", feature = "postgres"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use onmemos_backends::compute::{Flavour, KubeOptions, KubernetesCompute, RunAs, manifests};
use onmemos_core::api::{CreateSession, SessionListParams};
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::model::{
    MicroCredits, Placement, Session, SessionEventKind, SessionStatus, StopReason, Warning, cost_of,
};
use onmemos_core::ports::Database;
use onmemos_core::{Engine, EngineConfig, Error, ErrorKind, Principal, SessionSettings};
use onmemos_kube_standin::{Fault, FaultKind, NodeSpec, SpotProvider, StandIn};

const CREDITS: MicroCredits = 100_000_000;

struct World {
    engine: Engine,
    standin: StandIn,
    db: Arc<dyn Database>,
    user: Principal,
    workspace: WorkspaceId,
    _monitor: onmemos_core::monitor::MonitorHandle,
}

/// An engine on `db` whose sessions are pods of a fresh stand-in with `nodes`.
async fn world(
    db: onmemos_backends::db::SqlDatabase,
    flavour: Flavour,
    nodes: &[NodeSpec],
    tune: impl FnOnce(&mut KubeOptions),
) -> World {
    let standin = StandIn::start()
        .await
        .unwrap_or_else(|e| panic!("stand-in: {e}"));
    for node in nodes {
        standin
            .cluster()
            .add_node(node)
            .unwrap_or_else(|e| panic!("node: {e:?}"));
    }
    let mut options = KubeOptions {
        flavour,
        run_as: RunAs::Image,
        ..KubeOptions::default()
    };
    tune(&mut options);
    let url = standin.url().parse().unwrap_or_else(|e| panic!("{e}"));
    let compute = KubernetesCompute::with_config(kube::Config::new(url), options)
        .unwrap_or_else(|e| panic!("compute: {e}"));
    let db: Arc<dyn Database> = Arc::new(db);
    let engine = Engine::builder(db.clone())
        .with_compute(Arc::new(compute))
        .with_config(EngineConfig {
            sessions: SessionSettings {
                check_interval_ms: 300,
                billing_window_secs: 60,
                lease_secs: 5,
                node: Some("replica-a".into()),
                ..SessionSettings::default()
            },
            ..EngineConfig::default()
        })
        .build()
        .await
        .unwrap_or_else(|e| panic!("engine: {e}"));
    let (user, workspace) = common::member_with_workspace(&engine, "lab", CREDITS).await;
    let monitor = engine.monitor().spawn();
    World {
        engine,
        standin,
        db,
        user,
        workspace,
        _monitor: monitor,
    }
}

impl World {
    async fn create(&self, placement: Placement) -> Result<Session, Error> {
        self.engine
            .sessions()
            .create(
                &self.user,
                CreateSession {
                    workspace_id: self.workspace,
                    template: "python".into(),
                    limits: Default::default(),
                    placement,
                    env: Default::default(),
                },
            )
            .await
    }

    fn pods(&self) -> Api<Pod> {
        let client = self
            .standin
            .client()
            .unwrap_or_else(|e| panic!("client: {e}"));
        let namespace = manifests::namespace_name(&KubeOptions::default(), self.workspace);
        Api::namespaced(client, &namespace)
    }

    /// The only session of the user (a failed create returns no session).
    async fn only_session(&self) -> Session {
        let page = self
            .engine
            .sessions()
            .list(&self.user, &SessionListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list: {e}"));
        assert_eq!(page.items.len(), 1, "{:?}", page.items);
        page.items[0].clone()
    }

    async fn until_ended(&self, id: SessionId) -> Session {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = self
                .engine
                .sessions()
                .get(&self.user, id)
                .await
                .unwrap_or_else(|e| panic!("get: {e}"));
            // The stop's event is written right after its state.
            if matches!(s.status, SessionStatus::Stopped | SessionStatus::Failed)
                && self.events(id).await.iter().any(|e| {
                    matches!(
                        e,
                        SessionEventKind::Stopped { .. } | SessionEventKind::Failed { .. }
                    )
                })
            {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the session did not end: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn events(&self, id: SessionId) -> Vec<SessionEventKind> {
        common::event_kinds(&self.engine, &self.user, id).await
    }

    /// Nothing held, and what was posted is what the session cost.
    async fn check_money(&self, s: &Session) {
        common::check_paid(self.db.as_ref(), self.user.user_id(), s.cost_micros).await;
    }

    /// No pod of the session is left.
    async fn check_no_pod(&self, id: SessionId) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self
            .pods()
            .get_opt(&manifests::pod_name(id))
            .await
            .unwrap_or_else(|e| panic!("get pod: {e}"))
            .is_some()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the pod of {id} is still there"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn gke_nodes() -> Vec<NodeSpec> {
    vec![
        NodeSpec::new("on-demand-1"),
        NodeSpec::new("spot-1").gke_spot(),
    ]
}

#[tokio::test]
async fn a_spot_interruption_warns_then_stops_the_session_preempted_and_charged_to_the_end_of_its_pod()
 {
    for (name, db) in common::databases().await {
        let w = world(db, Flavour::Gke, &gke_nodes(), |_| {}).await;
        let s = w
            .create(Placement::Spot)
            .await
            .unwrap_or_else(|e| panic!("{name}: create: {e}"));
        let pod = w
            .pods()
            .get(&manifests::pod_name(s.id))
            .await
            .unwrap_or_else(|e| panic!("pod: {e}"));
        assert_eq!(
            pod.spec.as_ref().and_then(|p| p.node_name.as_deref()),
            Some("spot-1"),
            "{name}: a spot session on an on-demand node"
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        w.standin
            .cluster()
            .interrupt_spot("spot-1", SpotProvider::Gke, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("interrupt: {e:?}"));
        // The pod stays `Failed` after a node shutdown: read when its container ended.
        let mut finished = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while finished.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: the pod never ended"
            );
            let pod = w
                .pods()
                .get(&manifests::pod_name(s.id))
                .await
                .unwrap_or_else(|e| panic!("pod: {e}"));
            finished = pod
                .status
                .and_then(|st| st.container_statuses)
                .and_then(|cs| cs.into_iter().next())
                .and_then(|c| c.state?.terminated?.finished_at)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.0.to_string()).ok());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ended = w.until_ended(s.id).await;
        assert_eq!(
            ended.stop_reason,
            Some(StopReason::Preempted),
            "{name}: {ended:?}"
        );
        // It ended when its pod ended: at the container's finishedAt, which counts whole
        // seconds, as seen by the watch a moment later.
        let started = ended.started_at.unwrap_or_else(|| panic!("never started"));
        let stopped = ended.stopped_at.unwrap_or_else(|| panic!("no stop time"));
        let finished = finished
            .unwrap_or_else(|| unreachable!())
            .with_timezone(&chrono::Utc);
        assert!(
            finished <= stopped && stopped - finished < chrono::Duration::milliseconds(2500),
            "{name}: stopped at {stopped}, the pod ended at {finished}"
        );
        let ran_ms = (stopped - started).num_milliseconds();
        assert_eq!(
            ended.cost_micros,
            cost_of(ended.rate_micros_per_hour, ran_ms),
            "{name}: charged up to the pod's end ({ran_ms} ms)"
        );
        assert!(
            ended.cost_micros > 0,
            "{name}: a session that ran a second cost nothing"
        );
        let events = w.events(s.id).await;
        let warned = events.iter().position(|e| {
            matches!(
                e,
                SessionEventKind::Warning {
                    warning: Warning::Interruption,
                    ..
                }
            )
        });
        let stopped = events.iter().position(|e| {
            matches!(
                e,
                SessionEventKind::Stopped {
                    reason: StopReason::Preempted,
                    ..
                }
            )
        });
        assert!(
            matches!((warned, stopped), (Some(a), Some(b)) if a < b),
            "{name}: no interruption warning before the stop: {events:?}"
        );
        w.check_money(&ended).await;
    }
}

#[tokio::test]
async fn a_pod_deleted_outside_onmemos_stops_its_session_preempted() {
    for (name, db) in common::databases().await {
        let w = world(db, Flavour::Plain, &[NodeSpec::new("node-a")], |_| {}).await;
        let s = w
            .create(Placement::OnDemand)
            .await
            .unwrap_or_else(|e| panic!("{name}: create: {e}"));
        w.pods()
            .delete(
                &manifests::pod_name(s.id),
                &DeleteParams::default().grace_period(0),
            )
            .await
            .unwrap_or_else(|e| panic!("delete: {e}"));
        let ended = w.until_ended(s.id).await;
        assert_eq!(
            ended.stop_reason,
            Some(StopReason::Preempted),
            "{name}: {ended:?}"
        );
        assert!(
            ended
                .failure
                .as_deref()
                .is_some_and(|f| f.contains("deleted outside OnMemOS")),
            "{name}: {:?}",
            ended.failure
        );
        w.check_money(&ended).await;
    }
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_session_naming_it_and_voids_its_hold() {
    for (name, db) in common::databases().await {
        let w = world(db, Flavour::Plain, &[NodeSpec::new("node-a")], |_| {}).await;
        w.standin.cluster().refuse_image("python:3.12-slim");
        let e = w
            .create(Placement::OnDemand)
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: the session started"));
        assert!(e.message().contains("python:3.12-slim"), "{name}: {e}");
        let s = w.only_session().await;
        assert_eq!(s.status, SessionStatus::Failed, "{name}");
        assert!(
            s.failure
                .as_deref()
                .is_some_and(|f| f.contains("python:3.12-slim")),
            "{name}: {:?}",
            s.failure
        );
        w.check_money(&s).await;
        assert_eq!(s.cost_micros, 0);
        w.check_no_pod(s.id).await;
    }
}

#[tokio::test]
async fn no_spot_node_or_no_node_big_enough_fails_the_start_with_the_schedulers_message() {
    for (name, db) in common::databases().await {
        let small = NodeSpec::new("small").capacity(500, 1 << 30, 10);
        let w = world(db, Flavour::Gke, &[small], |o| {
            o.start_timeout = Duration::from_secs(2)
        })
        .await;
        for placement in [Placement::Spot, Placement::OnDemand] {
            let e = w
                .create(placement)
                .await
                .err()
                .unwrap_or_else(|| panic!("{name}: the session started"));
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{name}: {e}");
            assert!(
                e.message().contains("no node can run it")
                    && e.message().contains("nodes are available"),
                "{name}: {e}"
            );
        }
        let sessions = w
            .engine
            .sessions()
            .list(&w.user, &SessionListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list: {e}"));
        for s in &sessions.items {
            assert_eq!(s.status, SessionStatus::Failed, "{name}");
            w.check_no_pod(s.id).await;
        }
        common::check_paid(w.db.as_ref(), w.user.user_id(), 0).await;
    }
}

#[tokio::test]
async fn an_api_server_failing_briefly_is_retried_and_failing_for_good_fails_the_session_cleanly() {
    for (name, db) in common::databases().await {
        let w = world(db, Flavour::Plain, &[NodeSpec::new("node-a")], |o| {
            o.call_timeout = Duration::from_secs(1)
        })
        .await;
        let namespace = manifests::namespace_name(&KubeOptions::default(), w.workspace);
        let pods = format!("/api/v1/namespaces/{namespace}/pods");
        let fault = |times, kind| Fault {
            method: Some(http::Method::POST),
            path_prefix: pods.clone(),
            times,
            kind,
        };
        w.standin.cluster().inject(fault(1, FaultKind::Status(500)));
        w.standin.cluster().inject(fault(1, FaultKind::Status(429)));
        w.standin
            .cluster()
            .inject(fault(1, FaultKind::Stall(Duration::from_secs(3))));
        let s = w
            .create(Placement::OnDemand)
            .await
            .unwrap_or_else(|e| panic!("{name}: a 500, a 429 and a stall were not retried: {e}"));
        w.engine
            .sessions()
            .stop(&w.user, s.id)
            .await
            .unwrap_or_else(|e| panic!("stop: {e}"));
        w.check_no_pod(s.id).await;

        w.standin
            .cluster()
            .inject(fault(100, FaultKind::Status(500)));
        let e = w
            .create(Placement::OnDemand)
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: started through a broken API server"));
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{name}: {e}");
        assert!(e.message().contains("500"), "{name}: {e}");
        let failed = w
            .engine
            .sessions()
            .list(&w.user, &SessionListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list: {e}"))
            .items
            .into_iter()
            .find(|x| x.id != s.id)
            .unwrap_or_else(|| panic!("no failed session"));
        assert_eq!(failed.status, SessionStatus::Failed, "{name}");
        let stopped = w
            .engine
            .sessions()
            .get(&w.user, s.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        w.check_money(&stopped).await;
        w.check_no_pod(failed.id).await;
    }
}
