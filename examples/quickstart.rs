//! Quickstart with the client: start a session, run a command in it, upload a file that the
//! session then reads, stop it, and read the bill.
//!
//! ```text
//! cargo run --features client --example quickstart
//! ```
//!
//! With `ONMEMOS_URL` and `ONMEMOS_API_KEY` set (or in a `.env` file) it talks to that server,
//! whose key must hold some credits. Without them it first starts a server in this process on
//! the embedded defaults (SQLite, local disk, local compute, in a temporary directory), with an
//! admin holding 10 promotional credits.

use std::time::Duration;

use onmemos::client::api::{CreateSession, CreateWorkspace, ExecCommand, TransferListParams};
use onmemos::client::model::{MicroCredits, Role};
use onmemos::client::{Client, SessionLifetime};
use onmemos::core::api::LimitOverrides;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn credits(micros: MicroCredits) -> String {
    format!("{:.6}", micros as f64 / 1e6)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (client, _embedded) = match Client::from_env() {
        Ok(client) => (client, None),
        Err(_) => {
            let (client, server) = embedded().await?;
            (client, Some(server))
        }
    };
    println!("server {}", client.base_url());

    let ws = client
        .workspaces()
        .create(&CreateWorkspace {
            name: format!("quickstart-{}", std::process::id()),
            description: Some("made by examples/quickstart.rs".into()),
            env: Default::default(),
        })
        .await?;

    // The file first: on local compute over local storage a session sees its workspace's
    // files under `files/` of its working directory.
    let uploaded = client
        .storage()
        .upload_bytes(ws.id, "data/numbers.txt", "1\n2\n3\n4\n")
        .await?;
    println!("uploaded {} ({} bytes)", uploaded.path, uploaded.size);

    // The quote is given before anything starts; at most 10 minutes of it.
    let session = client
        .sessions()
        .create(&CreateSession {
            workspace_id: ws.id,
            template: "python".into(),
            limits: LimitOverrides::default()
                .with_lifetime(SessionLifetime(Duration::from_secs(600))),
            placement: Default::default(),
            env: Default::default(),
        })
        .await?;
    println!(
        "session {} is {} at {} credits/h",
        session.id,
        session.status.as_str(),
        credits(session.rate_micros_per_hour)
    );

    let out = client
        .sessions()
        .exec(
            session.id,
            &ExecCommand {
                command: vec![
                    "awk".into(),
                    "{ s += $1 } END { print \"sum of \" NR \" numbers: \" s }".into(),
                    "files/data/numbers.txt".into(),
                ],
                env: Default::default(),
                stdin: None,
                timeout_secs: Some(30),
            },
        )
        .await?;
    print!("exec: {}", out.stdout);
    assert_eq!(out.exit_code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("sum of 4 numbers: 10"), "{out:?}");

    let stopped = client.sessions().stop(session.id).await?;
    println!(
        "stopped ({}); it cost {} credits",
        stopped
            .stop_reason
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        credits(stopped.cost_micros)
    );

    // The bill: the balance, and the ledger transfers behind it.
    let balance = client.credits().balance().await?;
    println!("balance: {} credits available", credits(balance.available));
    let page = client
        .credits()
        .transfers(&TransferListParams::default())
        .await?;
    for t in &page.items {
        println!(
            "  {} {:<10} {:>12} credits  {}",
            t.id,
            t.kind.as_str(),
            credits(t.amount),
            t.reference.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// A server on a loopback port over the embedded defaults in a temporary directory, and a
/// client of it as an admin holding 10 credits. Dropped, the directory goes.
async fn embedded() -> Result<(Client, tempfile::TempDir), Error> {
    let dir = tempfile::tempdir()?;
    let engine = embedded_engine(dir.path()).await?;
    let admin = engine
        .users()
        .bootstrap(onmemos::core::api::CreateUser {
            email: "quickstart@example.com".into(),
            name: None,
            role: Some(Role::Admin),
        })
        .await?;
    let principal = onmemos::core::Principal::for_user(&admin.user);
    engine
        .credits()
        .grant(
            &principal,
            onmemos::core::api::CreditRequest {
                user_id: admin.user.id,
                amount_micros: 10_000_000,
                priority: None,
                expires_at: None,
                reference: Some("quickstart".into()),
            },
            None,
        )
        .await?;
    let monitor = engine.monitor().spawn();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = onmemos::server::router(engine);
    tokio::spawn(async move {
        let _monitor = monitor;
        axum::serve(listener, app).await
    });
    let client = Client::builder()
        .base_url(url)
        .api_key(admin.api_key.secret)
        .build()?;
    Ok((client, dir))
}

/// The engine over what `onmemos serve` uses by default: SQLite, sandboxed processes on this
/// machine and files on local disk, all in `dir`.
async fn embedded_engine(dir: &std::path::Path) -> Result<onmemos::Engine, Error> {
    use onmemos::backends::{compute, db, storage};
    let database = db::connect(&format!("sqlite://{}", dir.join("onmemos.db").display())).await?;
    Ok(onmemos::Engine::builder(database)
        .with_compute(compute::connect("local://", dir).await?)
        .with_storage(storage::connect("file://", &Default::default(), dir)?)
        .build()
        .await?)
}
