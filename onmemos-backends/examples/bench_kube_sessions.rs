//! Time to interactive of a Kubernetes session — create → first exec output — through the
//! OnMemOS engine (SQLite, `KubernetesCompute`) on the stand-in — both to the first byte of output — next to the bare kube-rs
//! sequence on the same stand-in in the same run: create the same pod, wait for it Running by
//! watch, exec `echo hi`. Then 100 sessions started at once. Run by
//! `scripts/bench-kube-sessions.sh`; the figures go in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use onmemos_backends::compute::{Flavour, KubeOptions, KubernetesCompute, RunAs, manifests};
use onmemos_backends::db::SqlDatabase;
use onmemos_core::api::{CreateSession, CreateUser, CreateWorkspace, ExecCommand};
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::model::{GrantSource, LedgerOp, Placement, Resources, TransferId};
use onmemos_core::ports::compute::{ExecEvent, SessionSpec};
use onmemos_core::{Engine, EngineConfig, Principal, SessionSettings};
use onmemos_kube_standin::{NodeSpec, StandIn};
use tokio::io::AsyncReadExt as _;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The bare sequence: the pod OnMemOS would make, created, watched until Running, `echo hi`.
async fn bare(client: &kube::Client, namespace: &str) -> Result<Duration, Failure> {
    let options = KubeOptions {
        run_as: RunAs::Image,
        ..KubeOptions::default()
    };
    let session = SessionId::new();
    let spec = SessionSpec {
        session,
        workspace: WorkspaceId::new(),
        template: None,
        image: "python:3.12-slim".into(),
        resources: Resources {
            cpu_millis: 1000,
            memory_mib: 2048,
            gpu: 0,
            disk_gib: 10,
        },
        env: BTreeMap::new(),
        placement: Placement::OnDemand,
        files: None,
        max_duration: Some(Duration::from_secs(3600)),
    };
    let mut pod = manifests::pod(&options, &spec);
    pod.metadata.namespace = Some(namespace.to_owned());
    let name = manifests::pod_name(session);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let start = Instant::now();
    pods.create(&PostParams::default(), &pod).await?;
    await_condition(pods.clone(), &name, conditions::is_pod_running()).await?;
    let mut process = pods
        .exec(
            &name,
            ["echo", "hi"],
            &AttachParams::default().container("session").stderr(false),
        )
        .await?;
    let mut out = process.stdout().ok_or("no stdout")?;
    let mut first = [0u8; 1];
    out.read_exact(&mut first).await?;
    let took = start.elapsed();
    drop(process);
    pods.delete(&name, &DeleteParams::default().grace_period(0))
        .await?;
    Ok(took)
}

/// Through OnMemOS: create the session (quote, hold, pod, Running), exec `echo hi`.
async fn through_onmemos(
    engine: &Engine,
    user: &Principal,
    workspace: WorkspaceId,
) -> Result<(Duration, SessionId), Failure> {
    let start = Instant::now();
    let s = engine
        .sessions()
        .create(
            user,
            CreateSession {
                workspace_id: workspace,
                template: "python".into(),
                limits: Default::default(),
                placement: Placement::OnDemand,
                env: Default::default(),
            },
        )
        .await?;
    let mut out = engine
        .sessions()
        .exec_stream(
            user,
            s.id,
            ExecCommand {
                command: vec!["echo".into(), "hi".into()],
                env: Default::default(),
                stdin: None,
                timeout_secs: None,
            },
        )
        .await?;
    // The first output, as the bare sequence reads it.
    let first = loop {
        match out.next().await {
            Some(Ok(ExecEvent::Stdout(b))) if !b.is_empty() => break b,
            Some(Ok(ExecEvent::Exit(code))) => {
                return Err(format!("exited {code:?} without output").into());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("no output".into()),
        }
    };
    let took = start.elapsed();
    if first[0] != b'h' {
        return Err(format!("exec said {first:?}").into());
    }
    Ok((took, s.id))
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let concurrent: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let standin = StandIn::start().await?;
    for i in 0..4 {
        standin
            .cluster()
            .add_node(&NodeSpec::new(&format!("node-{i}")).capacity(64_000, 256 << 30, 250))?;
    }
    let url = standin.url().parse()?;
    let compute = KubernetesCompute::with_config(
        kube::Config::new(url),
        KubeOptions {
            flavour: Flavour::Plain,
            run_as: RunAs::Image,
            ..KubeOptions::default()
        },
    )?;
    let dir = tempfile::tempdir()?;
    let db = SqlDatabase::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await?;
    let engine = Engine::builder(Arc::new(db))
        .with_compute(Arc::new(compute))
        .with_config(EngineConfig {
            sessions: SessionSettings {
                node: Some("bench".into()),
                ..SessionSettings::default()
            },
            ..EngineConfig::default()
        })
        .build()
        .await?;
    let created = engine
        .users()
        .bootstrap(CreateUser {
            email: "bench@example.com".into(),
            name: None,
            role: None,
        })
        .await?;
    let user = Principal::for_user(&created.user);
    engine
        .credits()
        .execute(&LedgerOp::Grant {
            id: TransferId::random("grant"),
            user: user.user_id(),
            amount: 1_000_000_000_000,
            source: GrantSource::Purchase,
            priority: 0,
            expires_at: None,
            reference: None,
        })
        .await?;
    let workspace = engine
        .workspaces()
        .create(
            &user,
            CreateWorkspace {
                name: "bench".into(),
                description: None,
                env: Default::default(),
            },
        )
        .await?
        .id;
    let client = standin.client()?;
    let namespace = manifests::namespace_name(&KubeOptions::default(), workspace);

    // The first of each provisions what later ones reuse (the namespace, the client's
    // connections): a warm-up, not counted.
    let (_, first) = through_onmemos(&engine, &user, workspace).await?;
    engine.sessions().stop(&user, first).await?;
    bare(&client, &namespace).await?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        theirs.push(bare(&client, &namespace).await?);
        let (took, id) = through_onmemos(&engine, &user, workspace).await?;
        ours.push(took);
        engine.sessions().stop(&user, id).await?;
    }
    ours.sort();
    theirs.sort();
    let (p50, p99) = (percentile(&ours, 0.5), percentile(&ours, 0.99));
    let (b50, b99) = (percentile(&theirs, 0.5), percentile(&theirs, 0.99));
    println!("time to interactive over {rounds} sessions, one at a time:");
    println!(
        "  bare kube-rs (create, watch Running, exec): p50 {:.1} ms, p99 {:.1} ms",
        ms(b50),
        ms(b99)
    );
    println!(
        "  through OnMemOS:                             p50 {:.1} ms, p99 {:.1} ms",
        ms(p50),
        ms(p99)
    );
    println!(
        "  ratio: p50 {:.2} (target <= 1.25), p99 {:.2} (target <= 1.5)",
        ms(p50) / ms(b50),
        ms(p99) / ms(b99)
    );

    let start = Instant::now();
    let all = futures::stream::iter(0..concurrent)
        .map(|_| through_onmemos(&engine, &user, workspace))
        .buffer_unordered(concurrent)
        .collect::<Vec<_>>()
        .await;
    let wall = start.elapsed();
    let mut ok = Vec::new();
    let mut failed = 0;
    for r in all {
        match r {
            Ok(x) => ok.push(x),
            Err(e) => {
                failed += 1;
                eprintln!("a concurrent session failed: {e}");
            }
        }
    }
    let mut times: Vec<Duration> = ok.iter().map(|(t, _)| *t).collect();
    times.sort();
    println!(
        "{concurrent} sessions started at once: {} interactive, {failed} failed, all within {:.2} s (p50 {:.0} ms, p99 {:.0} ms each)",
        ok.len(),
        wall.as_secs_f64(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
    );
    for (_, id) in ok {
        engine.sessions().stop(&user, id).await?;
    }
    Ok(())
}
