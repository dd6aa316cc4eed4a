//! `onmemos serve --compute-url kube://…` as a process, on the Kubernetes stand-in, with the
//! typed client and the real `kubectl`: a session is a pod with what it should have, exec and
//! the WebSocket shell reach it, an uploaded file is in it, a stop leaves nothing, a deleted
//! workspace takes its namespace along. Then two replicas on one PostgreSQL serving one
//! session, and a server killed with SIGKILL while its sessions run on the cluster.
#![cfg(feature = "kubernetes")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, create_user, free_port, secret, wait_ready};
use futures::TryStreamExt as _;
use onmemos::client::ShellEvent;
use onmemos::client::api::{CreateSession, SessionListParams, TransferListParams};
use onmemos::client::model::{
    MicroCredits, Placement, SessionEventKind, SessionStatus, StopReason, TransferKind, cost_of,
};
use onmemos::client::{Client, ErrorKind};
use onmemos_kube_standin::{NodeSpec, StandIn, Taint};
use serde_json::Value;

/// A stand-in with an on-demand node and a spot node (labelled and tainted as
/// `flavour=plain` expects).
async fn cluster() -> StandIn {
    let standin = StandIn::start()
        .await
        .unwrap_or_else(|e| panic!("stand-in: {e}"));
    let spot = NodeSpec::new("spot-a")
        .label("onmemos.dev/capacity", "spot")
        .taint(Taint::new("onmemos.dev/capacity", "spot", "NoSchedule"));
    for node in [NodeSpec::new("on-demand-a"), spot] {
        standin
            .cluster()
            .add_node(&node)
            .unwrap_or_else(|e| panic!("node: {e:?}"));
    }
    standin
}

/// `onmemos` in `dir` with sessions as pods of `standin`, a fast monitor, named `node`.
fn onmemos(dir: &Path, standin: &StandIn, node: &str) -> Command {
    let mut cmd = common::onmemos(dir);
    cmd.env("KUBECONFIG", standin.kubeconfig())
        .env("ONMEMOS_ENGINE__SESSIONS__CHECK_INTERVAL_MS", "200")
        .env("ONMEMOS_ENGINE__SESSIONS__NODE", node);
    cmd
}

/// `cmd serve --compute-url kube://…` on `port`.
fn serve(mut cmd: Command, port: u16) -> Child {
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        // The stand-in runs pods as this machine's user.
        "--compute-url",
        "kube://?run_as_user=image&start_timeout_secs=30",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap_or_else(|e| panic!("spawn onmemos serve: {e}"))
}

/// A server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl(standin: &StandIn, args: &[&str]) -> std::process::Output {
    tokio::task::block_in_place(|| {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(standin.kubeconfig())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("kubectl: {e}"))
    })
}

fn kubectl_json(standin: &StandIn, args: &[&str]) -> Value {
    let out = kubectl(standin, args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}

fn namespace_of(workspace: onmemos::client::id::WorkspaceId) -> String {
    format!("onmemos-{}", workspace.to_string().replace('_', "-"))
}

fn pod_of(session: onmemos::client::id::SessionId) -> String {
    session.to_string().replace('_', "-")
}

async fn session(
    client: &Client,
    workspace: onmemos::client::id::WorkspaceId,
    placement: Placement,
) -> onmemos::client::model::Session {
    client
        .sessions()
        .create(&CreateSession {
            workspace_id: workspace,
            template: "python".into(),
            limits: Default::default(),
            placement,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("create session: {e}"))
}

async fn run(client: &Client, session: onmemos::client::id::SessionId, script: &str) -> String {
    let out = client
        .sessions()
        .exec(session, &common::sh(script))
        .await
        .unwrap_or_else(|e| panic!("exec {script:?}: {e}"));
    assert_eq!(out.exit_code, Some(0), "{script}: {out:?}");
    out.stdout
}

/// Reads the shell until its output holds `needle`.
async fn read_until(shell: &mut onmemos::client::Shell, needle: &str) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            match shell.next().await {
                Some(Ok(ShellEvent::Output(b))) => seen.extend_from_slice(&b),
                Some(Ok(_)) => {}
                other => panic!("the shell ended before {needle:?}: {other:?}"),
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no {needle:?} in the shell: {}",
        String::from_utf8_lossy(&seen)
    );
}

/// Whether process `pid` of this machine is alive (not a zombie).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

async fn until<F: AsyncFn() -> bool>(what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An admin (made in `dir`) of the server on `port`, with credits and a workspace, once the
/// server answers.
async fn admin_with_workspace(
    dir: &Path,
    standin: &StandIn,
    port: u16,
) -> (Client, onmemos::client::model::Workspace, String) {
    // The user is made on the database directly, once the server made the database.
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&url).await;
    let key = secret(&create_user(
        onmemos(dir, standin, "admin"),
        "root@example.com",
        true,
    ));
    let c = client(&url, &key);
    common::buy_credits(&c, 100_000_000).await;
    let ws = common::workspace(&c, "pods").await;
    (c, ws, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_a_pod_reached_by_exec_and_the_shell_and_stopping_it_leaves_nothing() {
    if !onmemos_kube_standin::kubectl_on_path() {
        return;
    }
    let standin = cluster().await;
    let (dir, port) = (
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        free_port(),
    );
    let _server = Server(serve(onmemos(dir.path(), &standin, "a"), port));
    let (c, ws, _) = admin_with_workspace(dir.path(), &standin, port).await;
    c.storage()
        .upload_bytes(ws.id, "notes/hello.txt", &b"uploaded through the API\n"[..])
        .await
        .unwrap_or_else(|e| panic!("upload: {e}"));

    let s = session(&c, ws.id, Placement::Spot).await;
    assert_eq!(s.status, SessionStatus::Running);
    assert_eq!(
        run(&c, s.id, "cat files/notes/hello.txt").await,
        "uploaded through the API\n"
    );
    assert_eq!(
        run(&c, s.id, "pwd; echo $PYTHONUNBUFFERED").await,
        "/workspace\n1\n"
    );
    // No token: the session cannot speak for its service account to the API server.
    assert_eq!(
        run(
            &c,
            s.id,
            "test -e /var/run/secrets/kubernetes.io/serviceaccount/token; echo $?"
        )
        .await,
        "1\n"
    );
    let sleeper = run(&c, s.id, "sleep 1000 >/dev/null 2>&1 & echo $!").await;
    let sleeper = sleeper.trim().to_owned();
    assert!(
        alive(&sleeper),
        "the background job {sleeper} is not running"
    );

    let mut shell = c.shell(s.id).await.unwrap_or_else(|e| panic!("shell: {e}"));
    shell
        .send(b"echo typed-$((6*7))\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    read_until(&mut shell, "typed-42").await;
    shell
        .resize(41, 113)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    shell
        .send(b"stty size | tr ' ' x\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    read_until(&mut shell, "41x113").await;

    // What the cluster holds, as kubectl shows it.
    let namespace = namespace_of(ws.id);
    let pods = kubectl_json(&standin, &["get", "pods", "-n", &namespace, "-o", "json"]);
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{pods}");
    let pod = &items[0];
    assert_eq!(pod["metadata"]["name"], pod_of(s.id));
    assert_eq!(
        pod["metadata"]["labels"]["onmemos.dev/session"],
        s.id.to_string()
    );
    assert_eq!(
        pod["metadata"]["labels"]["onmemos.dev/workspace"],
        ws.id.to_string()
    );
    assert_eq!(
        pod["metadata"]["labels"]["onmemos.dev/template"],
        s.template_id.to_string()
    );
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "onmemos"
    );
    assert_eq!(pod["spec"]["nodeName"], "spot-a");
    assert_eq!(
        pod["spec"]["nodeSelector"],
        serde_json::json!({ "onmemos.dev/capacity": "spot" })
    );
    assert_eq!(
        pod["spec"]["tolerations"][0],
        serde_json::json!({ "key": "onmemos.dev/capacity", "operator": "Equal", "value": "spot", "effect": "NoSchedule" })
    );
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(resources["requests"]["cpu"], "1");
    assert_eq!(resources["limits"]["memory"], "2Gi");
    assert_eq!(pod["spec"]["volumes"][1]["name"], "files");
    assert!(
        pod["spec"]["volumes"][1]["hostPath"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("workspaces/{}", ws.id))),
        "{}",
        pod["spec"]["volumes"]
    );
    assert_eq!(pod["spec"]["automountServiceAccountToken"], Value::Null);
    let sa = kubectl_json(
        &standin,
        &[
            "get",
            "serviceaccount",
            "onmemos-session",
            "-n",
            &namespace,
            "-o",
            "json",
        ],
    );
    assert_eq!(sa["automountServiceAccountToken"], false);
    for kind in [
        "resourcequota/onmemos-quota",
        "limitrange/onmemos-limits",
        "networkpolicy/onmemos-isolate",
    ] {
        let got = kubectl(&standin, &["get", kind, "-n", &namespace]);
        assert!(
            got.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
    }

    c.sessions()
        .stop(s.id)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let gone = kubectl(&standin, &["get", "pod", &pod_of(s.id), "-n", &namespace]);
    assert!(
        !gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "the pod outlived its session"
    );
    until("the background job died with the pod", async || {
        !alive(&sleeper)
    })
    .await;
    drop(shell);

    c.workspaces()
        .delete(ws.id)
        .await
        .unwrap_or_else(|e| panic!("delete workspace: {e}"));
    let ns = kubectl(&standin, &["get", "namespace", &namespace]);
    assert!(
        !ns.status.success() && String::from_utf8_lossy(&ns.stderr).contains("NotFound"),
        "the namespace outlived its workspace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_serve_one_session_and_bill_each_tick_once() {
    let Some(database) = onmemos_backends::testing::fresh_postgres_url().await else {
        eprintln!("SKIPPED: two replicas need PostgreSQL (ONMEMOS_TEST_POSTGRES_URL)");
        return;
    };
    let standin = cluster().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let replica = |node: &str| {
        let mut cmd = onmemos(dir.path(), &standin, node);
        cmd.env("ONMEMOS_DATABASE_URL", &database);
        cmd
    };
    let key = secret(&create_user(replica("a"), "root@example.com", true));
    let (pa, pb) = (free_port(), free_port());
    let _a = Server(serve(replica("a"), pa));
    let _b = Server(serve(replica("b"), pb));
    let (ua, ub) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    wait_ready(&ua).await;
    wait_ready(&ub).await;
    let (a, b) = (client(&ua, &key), client(&ub, &key));
    common::buy_credits(&a, 100_000_000).await;
    let ws = common::workspace(&a, "replicas").await;
    let s = session(&a, ws.id, Placement::OnDemand).await;
    assert_eq!(run(&b, s.id, "echo through-b").await, "through-b\n");
    let mut shell = b
        .shell(s.id)
        .await
        .unwrap_or_else(|e| panic!("shell through b: {e}"));
    shell
        .send(b"echo shell-$((2+3))\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    read_until(&mut shell, "shell-5").await;
    // Both monitors tick while it runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = b
        .sessions()
        .stop(s.id)
        .await
        .unwrap_or_else(|e| panic!("stop through b: {e}"));
    assert_eq!(stopped.stop_reason, Some(StopReason::User));
    let ran_ms = (stopped.stopped_at.unwrap_or_default() - stopped.started_at.unwrap_or_default())
        .num_milliseconds();
    assert_eq!(
        stopped.cost_micros,
        cost_of(stopped.rate_micros_per_hour, ran_ms),
        "charged for exactly the time it ran"
    );
    let events = a
        .sessions()
        .events(s.id, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ticks: Vec<u64> = events
        .iter()
        .filter_map(|e| match e.kind {
            SessionEventKind::Charged { tick, .. } => Some(tick),
            _ => None,
        })
        .collect();
    assert!(ticks.len() >= 2, "the monitors did not tick: {events:?}");
    assert!(
        ticks.windows(2).all(|w| w[0] < w[1]),
        "a tick charged twice: {ticks:?}"
    );
    let posts: MicroCredits = a
        .credits()
        .transfers_all(TransferListParams {
            kind: Some(TransferKind::Post),
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .filter(|t| t.id.as_str().starts_with(&format!("{}.", s.id)))
        .map(|t| t.amount)
        .sum();
    assert_eq!(
        posts, stopped.cost_micros,
        "the ledger and the session disagree"
    );
    let balance = a
        .credits()
        .balance()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        balance.counters.debits_pending, 0,
        "a hold outlived the session"
    );
    let gone = b
        .sessions()
        .exec(s.id, &common::sh("true"))
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(gone, Some(ErrorKind::Conflict), "exec in a stopped session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_its_sessions_run_on_the_cluster_reconciles_them_on_restart() {
    if !onmemos_kube_standin::kubectl_on_path() {
        return;
    }
    let standin = cluster().await;
    let (dir, port) = (
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        free_port(),
    );
    let mut server = Server(serve(onmemos(dir.path(), &standin, "a"), port));
    let (c, ws, key) = admin_with_workspace(dir.path(), &standin, port).await;
    let lives = session(&c, ws.id, Placement::OnDemand).await;
    let dies = session(&c, ws.id, Placement::OnDemand).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.0.kill().unwrap_or_else(|e| panic!("kill: {e}"));
    let _ = server.0.wait();
    // While it is down: one session's pod goes, and a pod no session owns appears (a start
    // the server died in the middle of).
    let namespace = namespace_of(ws.id);
    let deleted = kubectl(
        &standin,
        &[
            "delete",
            "pod",
            &pod_of(dies.id),
            "-n",
            &namespace,
            "--grace-period=0",
        ],
    );
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let stray = onmemos::client::id::SessionId::new();
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": pod_of(stray), "namespace": namespace, "labels": {
            "app.kubernetes.io/managed-by": "onmemos", "onmemos.dev/session": stray.to_string(),
        } },
        "spec": { "restartPolicy": "Never", "containers": [{ "name": "session", "image": "python:3.12-slim", "command": ["sleep", "1000"] }] },
    });
    let file = dir.path().join("stray.json");
    std::fs::write(&file, manifest.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let made = kubectl(
        &standin,
        &[
            "apply",
            "--validate=false",
            "-f",
            &file.display().to_string(),
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    // On another port: this one may have gone to another test's server meanwhile.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = Server(serve(onmemos(dir.path(), &standin, "a"), port));
    wait_ready(&url).await;
    let c = client(&url, &key);
    // Its pod went while no server watched: it is reconciled, charged up to its last tick.
    until("the session whose pod went is stopped", async || {
        c.sessions()
            .get(dies.id)
            .await
            .is_ok_and(|s| s.status == SessionStatus::Stopped)
    })
    .await;
    let ended = c
        .sessions()
        .get(dies.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ended.stop_reason,
        Some(StopReason::ServerRestartReconciled),
        "{ended:?}"
    );
    until("the pod no session owns is deleted", async || {
        !kubectl(&standin, &["get", "pod", &pod_of(stray), "-n", &namespace])
            .status
            .success()
    })
    .await;
    // The session whose pod ran through the restart still runs, and is still reachable.
    let still = c
        .sessions()
        .get(lives.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(still.status, SessionStatus::Running, "{still:?}");
    assert_eq!(run(&c, lives.id, "echo survived").await, "survived\n");
    let stopped = c
        .sessions()
        .stop(lives.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ran_ms = (stopped.stopped_at.unwrap_or_default() - stopped.started_at.unwrap_or_default())
        .num_milliseconds();
    assert_eq!(
        stopped.cost_micros,
        cost_of(stopped.rate_micros_per_hour, ran_ms),
        "the downtime is charged: its pod ran"
    );
    let sessions = c
        .sessions()
        .list(&SessionListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        sessions
            .items
            .iter()
            .all(|s| s.status == SessionStatus::Stopped),
        "{:?}",
        sessions.items
    );
    let balance = c
        .credits()
        .balance()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        balance.counters.debits_pending, 0,
        "a hold outlived its session"
    );
}
