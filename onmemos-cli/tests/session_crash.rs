//! `onmemos serve` is killed with SIGKILL while sessions run. The sessions' background jobs
//! outlive it (their shells go with their terminals); when it is started again, it stops every
//! such session (`server_restart_reconciled`), charges it exactly up to its last tick and no
//! further, releases its hold, and kills its processes (checked in /proc).

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{client, create_user, free_port, secret, serve, wait_ready};
use futures::TryStreamExt;
use onmemos::client::model::{
    MicroCredits, SessionStatus, StopReason, Transfer, TransferKind, cost_of,
};
use onmemos::core::api::{SessionListParams, TransferListParams};

/// `onmemos` in `dir` on SQLite, with unsandboxed local compute (so background jobs outlive
/// the commands that start them) and a fast monitor.
fn onmemos(dir: &Path) -> Command {
    let mut cmd = common::onmemos(dir);
    cmd.env("ONMEMOS_DATABASE_URL", "")
        .env("ONMEMOS_COMPUTE_URL", "local://?sandbox=off")
        .env("ONMEMOS_ENGINE__SESSIONS__CHECK_INTERVAL_MS", "100")
        .env("ONMEMOS_ENGINE__SESSIONS__NODE", "crash-test");
    cmd
}

fn spawn(dir: &Path, port: u16) -> Child {
    serve(onmemos(dir), port)
}

use onmemos_backends::testing::session_processes as processes_of;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_killed_server_are_reconciled_on_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let created = create_user(onmemos(dir.path()), "root@example.com", true);
    let key = secret(&created);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn(dir.path(), port);
    wait_ready(&url).await;
    let client = client(&url, &key);
    common::buy_credits(&client, 100_000_000).await;
    let ws = common::workspace(&client, "crash").await;
    let mut ids = Vec::new();
    let first_created = Instant::now();
    for _ in 0..3 {
        let s = common::start_session(&client, ws.id).await;
        // A background job: it outlives the server (the shell goes with its terminal).
        let out = client
            .sessions()
            .exec(s.id, &common::sh("sleep 1000 >/dev/null 2>&1 &"))
            .await
            .unwrap_or_else(|e| panic!("exec: {e}"));
        assert_eq!(out.exit_code, Some(0));
        ids.push(s.id);
    }
    // Let the monitor tick a few times, then kill the server mid-flight.
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill().unwrap_or_else(|e| panic!("kill: {e}"));
    let _ = server.wait();
    let lived_ms = i64::try_from(first_created.elapsed().as_millis()).unwrap_or(i64::MAX);
    for id in &ids {
        assert!(
            !processes_of(&id.to_string()).is_empty(),
            "the session's background job died with the server: nothing left to reconcile"
        );
    }
    let mut server = spawn(dir.path(), port);
    wait_ready(&url).await;
    // Reconciliation runs as the monitor starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sessions = loop {
        let page = client
            .sessions()
            .list(&SessionListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if page
            .items
            .iter()
            .all(|s| s.status != SessionStatus::Running)
        {
            break page.items;
        }
        assert!(Instant::now() < deadline, "sessions were not reconciled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let posts: Vec<Transfer> = client
        .credits()
        .transfers_all(TransferListParams {
            kind: Some(TransferKind::Post),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("transfers: {e}"));
    let mut total: MicroCredits = 0;
    for s in &sessions {
        assert_eq!(
            s.stop_reason,
            Some(StopReason::ServerRestartReconciled),
            "{s:?}"
        );
        assert!(
            processes_of(&s.id.to_string()).is_empty(),
            "processes of {} survived the restart",
            s.id
        );
        // Charged exactly what the ledger posted for it: each tick's settle, the one a kill
        // may have cut off before the session recorded it (replayed by the reconciliation)
        // included, and nothing for the time after its last tick.
        let prefix = format!("{}.", s.id);
        let posted: MicroCredits = posts
            .iter()
            .filter(|t| t.id.as_str().starts_with(&prefix))
            .map(|t| t.amount)
            .sum();
        assert_eq!(s.cost_micros, posted, "{}: cost and ledger disagree", s.id);
        let events = client
            .sessions()
            .events(s.id, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let charged_by_ticks: MicroCredits = events
            .iter()
            .filter_map(|e| match e.kind {
                onmemos::client::model::SessionEventKind::Charged { amount_micros, .. } => {
                    Some(amount_micros)
                }
                _ => None,
            })
            .sum();
        assert!(
            charged_by_ticks <= s.cost_micros,
            "{}: its ticks charged {charged_by_ticks}, more than its cost {}",
            s.id,
            s.cost_micros
        );
        assert!(s.cost_micros > 0, "{}: its ticks were never charged", s.id);
        assert!(
            s.cost_micros <= cost_of(s.rate_micros_per_hour, lived_ms),
            "{}: charged more than it ran",
            s.id
        );
        total += s.cost_micros;
    }
    let balance = client
        .credits()
        .balance()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        balance.counters.debits_pending, 0,
        "a hold outlived its session"
    );
    assert_eq!(balance.counters.debits_posted, total);
    let _ = server.kill();
    let _ = server.wait();
}
