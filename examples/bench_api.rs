//! The API's hot path: an authenticated `GET /v1/sessions/{id}` through the whole server,
//! against a bare axum handler of the same shape (the same path, a bearer token compared, the
//! same session serialized to JSON), measured with `wrk` (2 threads, 16 connections) in the same run. Prints
//! requests per second, p50 and p99 of each, and the ratio.
//!
//! `cargo run --release --features client --example bench_api -- [rounds] [seconds]`
//! (`scripts/bench-api.sh` installs `wrk` and runs it). The server runs the embedded defaults
//! (SQLite, local disk, local compute) on a runtime of 2 workers; so does the bare handler.

use std::process::Command;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use onmemos::client::Client;
use onmemos::client::api::{CreateSession, CreateUser, CreateWorkspace, CreditRequest};
use onmemos::client::model::Role;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What `wrk` measured.
#[derive(Debug, Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// A latency as `wrk` prints it (`812.00us`, `1.52ms`, `2.01s`), in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        _ => return None,
    })
}

fn wrk(url: &str, key: &str, seconds: u32) -> Result<Figures, Error> {
    let out = Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {key}"), url])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") {
        return Err(format!("wrk failed or saw errors:\n{text}").into());
    }
    let field = |prefix: &str| {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .map(str::trim)
                .map(str::to_owned)
        })
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or("no Requests/sec in wrk's output")?;
    let p50 = field("50%").and_then(|v| millis(&v)).ok_or("no p50")?;
    let p99 = field("99%").and_then(|v| millis(&v)).ok_or("no p99")?;
    Ok(Figures {
        rps,
        p50_ms: p50,
        p99_ms: p99,
    })
}

#[derive(Clone)]
struct Bare {
    key: String,
    id: String,
    /// The session, serialized again for every request as the server does.
    session: std::sync::Arc<serde_json::Value>,
}

async fn bare_session(
    State(bare): State<Bare>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k == bare.key);
    if !authorized {
        return (StatusCode::UNAUTHORIZED, String::new()).into_response();
    }
    if id != bare.id {
        return (StatusCode::NOT_FOUND, String::new()).into_response();
    }
    axum::Json(bare.session.clone()).into_response()
}

/// Runs `serve` on its own runtime of 2 workers; returns what `ready` sends back.
fn on_runtime<T: Send + 'static>(
    serve: impl FnOnce(
        std::sync::mpsc::Sender<Result<T, String>>,
    ) -> futures::future::BoxFuture<'static, ()>
    + Send
    + 'static,
) -> Result<T, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(serve(tx));
    });
    Ok(rx.recv()??)
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let seconds: u32 = args.next().map_or(Ok(10), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_path_buf();

    // The OnMemOS server, embedded defaults, default middleware (per-key rate limit raised so
    // that it is measured, not hit).
    let (url, admin_key, user) = on_runtime(move |ready| {
        Box::pin(async move {
            let started = async {
                use onmemos::backends::{compute, db};
                let url = format!("sqlite://{}", root.join("onmemos.db").display());
                let engine = onmemos::Engine::builder(db::connect(&url).await?)
                    .with_compute(compute::connect("local://", &root).await?)
                    .build()
                    .await?;
                let admin = engine
                    .users()
                    .bootstrap(CreateUser {
                        email: "bench@example.com".into(),
                        name: None,
                        role: Some(Role::Admin),
                    })
                    .await?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let url = format!("http://{}", listener.local_addr()?);
                let config = onmemos::server::ServerConfig {
                    rate_limit_per_second: 10_000_000,
                    rate_limit_burst: 10_000_000,
                    ..Default::default()
                };
                let app = onmemos::server::router_with(engine, config);
                tokio::spawn(axum::serve(listener, app).into_future());
                Ok::<_, Error>((url, admin.api_key.secret, admin.user.id))
            };
            match started.await {
                Ok(v) => {
                    let _ = ready.send(Ok(v));
                    std::future::pending::<()>().await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        })
    })?;
    let (id, body) = tokio::runtime::Runtime::new()?.block_on(async {
        let client = Client::builder()
            .base_url(&url)
            .api_key(&admin_key)
            .build()?;
        client
            .credits()
            .grant(&CreditRequest {
                user_id: user,
                amount_micros: 100_000_000,
                priority: None,
                expires_at: None,
                reference: None,
            })
            .await?;
        let ws = client
            .workspaces()
            .create(&CreateWorkspace {
                name: "bench".into(),
                description: None,
                env: Default::default(),
            })
            .await?;
        let session = client
            .sessions()
            .create(&CreateSession {
                workspace_id: ws.id,
                template: "python".into(),
                limits: Default::default(),
                placement: Default::default(),
                env: Default::default(),
            })
            .await?;
        let body = reqwest::Client::new()
            .get(format!("{url}/v1/sessions/{}", session.id))
            .bearer_auth(&admin_key)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok::<_, Error>((session.id.to_string(), body))
    })?;

    // The bare handler of the same shape.
    let bare = Bare {
        key: admin_key.clone(),
        id: id.clone(),
        session: std::sync::Arc::new(serde_json::from_str(&body)?),
    };
    let bare_url = on_runtime(move |ready| {
        Box::pin(async move {
            let app = axum::Router::new()
                .route("/v1/sessions/{id}", axum::routing::get(bare_session))
                .with_state(bare);
            match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(listener) => {
                    let url = listener
                        .local_addr()
                        .map(|a| format!("http://{a}"))
                        .map_err(|e| e.to_string());
                    let _ = ready.send(url);
                    let _ = axum::serve(listener, app).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        })
    })?;

    let ours_url = format!("{url}/v1/sessions/{id}");
    let bare_url = format!("{bare_url}/v1/sessions/{id}");
    // Warm both up.
    wrk(&ours_url, &admin_key, 2)?;
    wrk(&bare_url, &admin_key, 2)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            ours.push(wrk(&ours_url, &admin_key, seconds)?);
            theirs.push(wrk(&bare_url, &admin_key, seconds)?);
        } else {
            theirs.push(wrk(&bare_url, &admin_key, seconds)?);
            ours.push(wrk(&ours_url, &admin_key, seconds)?);
        }
    }
    // Where the time goes: the middleware alone (`/healthz`), and authentication with one
    // row read (`/v1/me`).
    for path in ["/healthz", "/v1/me"] {
        let f = wrk(&format!("{url}{path}"), &admin_key, seconds)?;
        println!(
            "GET {path}: {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms)",
            f.rps, f.p50_ms, f.p99_ms
        );
    }
    let median = |v: &[Figures], f: fn(&Figures) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let (o_rps, b_rps) = (median(&ours, |f| f.rps), median(&theirs, |f| f.rps));
    println!(
        "GET /v1/sessions/{{id}}, wrk -t2 -c16, {rounds} rounds of {seconds} s (medians): \
         onmemos {o_rps:.0} req/s (p50 {:.2} ms, p99 {:.2} ms); bare axum {b_rps:.0} req/s \
         (p50 {:.2} ms, p99 {:.2} ms); ratio {:.2}",
        median(&ours, |f| f.p50_ms),
        median(&ours, |f| f.p99_ms),
        median(&theirs, |f| f.p50_ms),
        median(&theirs, |f| f.p99_ms),
        o_rps / b_rps
    );
    Ok(())
}
