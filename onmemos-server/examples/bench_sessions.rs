//! Sessions, measured against bare baselines in the same run:
//! - time to interactive: `POST /v1/sessions` → `POST …/exec` of `echo hi` → its output, over
//!   HTTP on loopback, next to a bare fork+exec of `echo hi` (`n` sequential runs);
//! - shell throughput: `cat` of a 100 MB file through the WebSocket shell, next to the same
//!   `cat` in a shell under a bare local PTY;
//! - keystroke echo: one key to its echo through the WebSocket shell, next to a bare PTY.
//!
//! Usage: `bench_sessions [runs] [megabytes]` (defaults 100 and 100); `scripts/bench-sessions.sh`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use onmemos_backends::compute::LocalCompute;
use onmemos_backends::db::SqlDatabase;
use onmemos_core::api::CreateUser;
use onmemos_core::model::{GrantSource, LedgerOp, Role, TransferId};
use onmemos_core::{Engine, EngineConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(name: &str, ours: &mut [Duration], bare: &mut [Duration]) {
    ours.sort();
    bare.sort();
    println!(
        "{name}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms | bare p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms | p50 ratio {:.1}×",
        ms(percentile(ours, 0.5)),
        ms(percentile(ours, 0.95)),
        ms(percentile(ours, 0.99)),
        ms(percentile(bare, 0.5)),
        ms(percentile(bare, 0.95)),
        ms(percentile(bare, 0.99)),
        ms(percentile(ours, 0.5)) / ms(percentile(bare, 0.5)).max(1e-9),
    );
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn shell(&self, id: &str) -> Socket {
        let url = format!(
            "{}/v1/sessions/{id}/shell?rows=50&cols=200",
            self.base.replace("http://", "ws://")
        );
        let mut req = url.into_client_request().unwrap_or_else(|e| panic!("{e}"));
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.key)
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        tokio_tungstenite::connect_async(req)
            .await
            .unwrap_or_else(|e| panic!("shell: {e}"))
            .0
    }
}

/// Reads WebSocket output until `marker` appears; returns the bytes read.
async fn ws_until(ws: &mut Socket, marker: &[u8]) -> usize {
    let mut total = 0;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                total += b.len();
                tail.extend_from_slice(&b);
                if tail.windows(marker.len()).any(|w| w == marker) {
                    return total;
                }
                let keep = tail.len().saturating_sub(marker.len());
                tail.drain(..keep);
            }
            Some(Ok(_)) => {}
            other => panic!("shell ended: {other:?}"),
        }
    }
}

/// Reads PTY output until `marker` appears; returns the bytes read.
async fn pty_until(pty: &mut pty_process::Pty, marker: &[u8]) -> usize {
    let mut total = 0;
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = pty
            .read(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("pty: {e}"));
        assert!(n > 0, "pty closed");
        total += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.windows(marker.len()).any(|w| w == marker) {
            return total;
        }
        let keep = tail.len().saturating_sub(marker.len());
        tail.drain(..keep);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let megabytes: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = SqlDatabase::open(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::new(dir.path().join("compute"));
    let engine = Engine::builder(Arc::new(db))
        .with_compute(Arc::new(compute))
        .with_config(EngineConfig::default())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "compute: local, sandboxed: {}",
        engine
            .compute()
            .map(|c| c.capabilities().sandboxed)
            .unwrap_or(false)
    );
    let user = engine
        .users()
        .bootstrap(CreateUser {
            email: "bench@example.com".into(),
            name: None,
            role: Some(Role::Member),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .credits()
        .execute(&LedgerOp::Grant {
            id: TransferId::random("grant"),
            user: user.user.id,
            amount: 1_000_000_000,
            source: GrantSource::Purchase,
            priority: 0,
            expires_at: None,
            reference: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let app = onmemos_server::router_with(
        engine.clone(),
        onmemos_server::ServerConfig {
            // Measures the API, not its per-key rate limit.
            rate_limit_per_second: 0,
            ..Default::default()
        },
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{addr}"),
        key: user.api_key.secret,
    };
    let ws_id = api.post("/v1/workspaces", json!({"name": "bench"})).await["id"].clone();

    // Time to interactive.
    let mut ours = Vec::with_capacity(runs);
    let mut bare = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let s = api
            .post(
                "/v1/sessions",
                json!({"workspace_id": ws_id, "template": "python"}),
            )
            .await;
        let id = s["id"].as_str().unwrap_or_default().to_owned();
        let out = api
            .post(
                &format!("/v1/sessions/{id}/exec"),
                json!({"command": ["echo", "hi"]}),
            )
            .await;
        ours.push(t.elapsed());
        assert_eq!(out["stdout"], "hi\n");
        api.post(&format!("/v1/sessions/{id}/stop"), json!({}))
            .await;

        let t = Instant::now();
        let out = tokio::process::Command::new("echo")
            .arg("hi")
            .output()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        bare.push(t.elapsed());
        assert_eq!(out.stdout, b"hi\n");
    }
    report(
        &format!("time to interactive ({runs} runs)"),
        &mut ours,
        &mut bare,
    );

    // Shell throughput and keystroke echo.
    let s = api
        .post(
            "/v1/sessions",
            json!({"workspace_id": ws_id, "template": "python"}),
        )
        .await;
    let id = s["id"].as_str().unwrap_or_default().to_owned();
    let bytes = megabytes * 1024 * 1024;
    let made = api
        .post(
            &format!("/v1/sessions/{id}/exec"),
            json!({"command": ["sh", "-c", format!("head -c {} /dev/urandom | base64 -w 100 > big.txt && wc -c < big.txt", bytes * 3 / 4)], "timeout_secs": 600}),
        )
        .await;
    let file_bytes: usize = made["stdout"]
        .as_str()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    let workdir = dir
        .path()
        .join("compute/workspaces")
        .join(ws_id.as_str().unwrap_or_default());

    let mut ws = api.shell(&id).await;
    ws.send(Message::Binary(b"stty -echo; PS1='$ '\n".to_vec().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws.send(Message::Binary(b"echo READY''1\n".to_vec().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws_until(&mut ws, b"READY1").await;
    let t = Instant::now();
    ws.send(Message::Binary(
        b"cat big.txt; echo DONE''1\n".to_vec().into(),
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got = ws_until(&mut ws, b"DONE1").await;
    let ws_secs = t.elapsed().as_secs_f64();

    let (mut pty, pts) = pty_process::open().unwrap_or_else(|e| panic!("{e}"));
    pty.resize(pty_process::Size::new(50, 200))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = pty_process::Command::new("bash")
        .args(["--norc", "-i"])
        .current_dir(&workdir)
        .spawn(pts)
        .unwrap_or_else(|e| panic!("{e}"));
    pty.write_all(b"stty -echo; PS1='$ '\necho READY''1\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pty_until(&mut pty, b"READY1").await;
    let t = Instant::now();
    pty.write_all(b"cat big.txt; echo DONE''1\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bare_got = pty_until(&mut pty, b"DONE1").await;
    let pty_secs = t.elapsed().as_secs_f64();
    let mb = |n: usize, s: f64| n as f64 / 1_048_576.0 / s;
    println!(
        "shell throughput (cat of {:.0} MB): websocket {:.0} MB/s ({} bytes) | bare pty {:.0} MB/s ({} bytes) | ratio {:.2}",
        file_bytes as f64 / 1_048_576.0,
        mb(got, ws_secs),
        got,
        mb(bare_got, pty_secs),
        bare_got,
        mb(got, ws_secs) / mb(bare_got, pty_secs)
    );

    // Keystroke echo: turn echo back on, type a key, wait for it, erase it.
    ws.send(Message::Binary(b"stty echo\n".to_vec().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pty.write_all(b"stty echo\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Drain what is queued.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), ws.next()).await {}
    let mut drain = vec![0u8; 65536];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(100), pty.read(&mut drain)).await
    {}
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        ws.send(Message::Binary(b"x".to_vec().into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ws_until(&mut ws, b"x").await;
        ours.push(t.elapsed());
        ws.send(Message::Binary(b"\x7f".to_vec().into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ws_until(&mut ws, b"\x08").await;

        let t = Instant::now();
        pty.write_all(b"x").await.unwrap_or_else(|e| panic!("{e}"));
        pty_until(&mut pty, b"x").await;
        bare.push(t.elapsed());
        pty.write_all(b"\x7f")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        pty_until(&mut pty, b"\x08").await;
    }
    report("keystroke echo (200 keys)", &mut ours, &mut bare);
    let _ = child.kill().await;
    api.post(&format!("/v1/sessions/{id}/stop"), json!({}))
        .await;
}
