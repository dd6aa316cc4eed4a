//! Kill -9 during load, on SQLite and on PostgreSQL: `onmemos serve` is killed with SIGKILL at
//! random moments while clients buy credits and create workspaces, 30 times
//! (`ONMEMOS_CRASH_ROUNDS` for more). After every
//! restart, each operation the server acknowledged is still there, and the ledger reconciles
//! with zero drift. The seed is printed; `ONMEMOS_SEED` replays it.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use common::{client, create_user, free_port, secret, serve, wait_ready};
use onmemos::core::api::{
    CreateUser, CreateWorkspace, CreditRequest, ListParams, TransferListParams,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

/// `onmemos` in `dir`, on the test's database (SQLite in `dir` when `database` is empty).
fn onmemos(dir: &Path, database: &str) -> Command {
    let mut cmd = common::onmemos(dir);
    cmd.env("ONMEMOS_DATABASE_URL", database);
    // A load test: the per-key rate limit would thin the load it exists to apply.
    cmd.env("ONMEMOS_SERVER__RATE_LIMIT_PER_SECOND", "0");
    cmd
}

fn spawn(dir: &Path, database: &str, port: u16) -> Child {
    serve(onmemos(dir, database), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_during_load_loses_nothing_acknowledged_on_sqlite() {
    kill_nine_during_load("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_during_load_loses_nothing_acknowledged_on_postgres() {
    let Some(url) = onmemos_backends::testing::fresh_postgres_url().await else {
        return;
    };
    kill_nine_during_load(&url).await;
}

async fn kill_nine_during_load(database: &str) {
    let seed: u64 = std::env::var("ONMEMOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let rounds: usize = std::env::var("ONMEMOS_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    eprintln!("seed: {seed} (replay with ONMEMOS_SEED={seed}), {rounds} kills");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let admin_key = secret(&create_user(
        onmemos(dir.path(), database),
        "root@example.com",
        true,
    ));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = spawn(dir.path(), database, port);
    wait_ready(&url).await;
    let admin = client(&url, &admin_key);
    let member = admin
        .users()
        .create(&CreateUser {
            email: "load@example.com".into(),
            name: None,
            role: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let member_client = client(&url, &member.api_key.secret);

    // Acknowledged: (transfer id, amount) and workspace ids the server answered 2xx for.
    let credited: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let workspaces: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut serial = 0u64;
    for round in 0..rounds {
        let mut load = Vec::new();
        for worker in 0..8 {
            let (admin, member_client) = (admin.clone(), member_client.clone());
            let (credited, workspaces) = (credited.clone(), workspaces.clone());
            let user = member.user.id;
            let base = serial + worker * 1_000_000;
            load.push(tokio::spawn(async move {
                for i in 0.. {
                    let n = base + i;
                    if n.is_multiple_of(3) {
                        let name = format!("w{n}");
                        if let Ok(ws) = member_client
                            .workspaces()
                            .create(&CreateWorkspace {
                                name,
                                description: None,
                                env: Default::default(),
                            })
                            .await
                        {
                            workspaces.lock().await.push(ws.id.to_string());
                        }
                    } else {
                        let amount = 1 + (n as i64 % 997);
                        let request = CreditRequest {
                            user_id: user,
                            amount_micros: amount,
                            priority: None,
                            expires_at: None,
                            reference: Some(format!("n{n}")),
                        };
                        if let Ok(t) = admin.credits().purchase(&request).await {
                            credited.lock().await.push((t.id.to_string(), t.amount));
                        }
                    }
                }
            }));
        }
        serial += 10_000_000;
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..400))).await;
        child.kill().unwrap_or_else(|e| panic!("kill: {e}")); // SIGKILL
        let _ = child.wait();
        for task in load {
            task.abort();
        }
        child = spawn(dir.path(), database, port);
        wait_ready(&url).await;

        // Nothing acknowledged is missing.
        let mut stored = std::collections::HashMap::new();
        let mut params = TransferListParams {
            kind: None,
            limit: Some(200),
            cursor: None,
        };
        loop {
            let page = member_client
                .credits()
                .transfers(&params)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            for t in page.items {
                stored.insert(t.id.to_string(), t.amount);
            }
            match page.next_cursor {
                Some(c) => params.cursor = Some(c),
                None => break,
            }
        }
        for (id, amount) in credited.lock().await.iter() {
            assert_eq!(
                stored.get(id),
                Some(amount),
                "round {round} (seed {seed}): acknowledged purchase {id} lost"
            );
        }
        let balance = member_client
            .credits()
            .balance()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            balance.counters.credits_posted,
            stored.values().sum::<i64>(),
            "round {round}: balance and transfers differ"
        );
        let mut listed = std::collections::HashSet::new();
        let mut params = ListParams::first(200);
        loop {
            let page = member_client
                .workspaces()
                .list(&params)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            listed.extend(page.items.iter().map(|w| w.id.to_string()));
            match page.next_cursor {
                Some(c) => params.cursor = Some(c),
                None => break,
            }
        }
        for id in workspaces.lock().await.iter() {
            assert!(
                listed.contains(id),
                "round {round} (seed {seed}): acknowledged workspace {id} lost"
            );
        }
    }
    child.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = child.wait();
    let out = onmemos(dir.path(), database)
        .args(["admin", "reconcile"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "reconcile after {rounds} kills: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let acknowledged = credited.lock().await.len() + workspaces.lock().await.len();
    eprintln!("{acknowledged} acknowledged operations survived {rounds} kills");
    assert!(
        acknowledged > rounds * 5,
        "too little load to mean anything: {acknowledged}"
    );
}
