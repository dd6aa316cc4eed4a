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
#[path = "support/bench_server.rs"]
mod bench_server;

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

/// The bare handler on a listener of its own, served on a runtime of 2 workers (as the
/// server is); its URL.
fn serve_bare(bare: Bare) -> Result<String, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}", listener.local_addr()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bare-axum")
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let app = axum::Router::new()
                .route("/v1/sessions/{id}", axum::routing::get(bare_session))
                .with_state(bare);
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = axum::serve(listener, app).await;
            }
        });
    });
    Ok(url)
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let seconds: u32 = args.next().map_or(Ok(10), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    // The OnMemOS server, embedded defaults, default middleware (per-key rate limit raised so
    // that it is measured, not hit).
    let config = onmemos::server::ServerConfig {
        rate_limit_per_second: 10_000_000,
        rate_limit_burst: 10_000_000,
        ..Default::default()
    };
    let (url, admin_key, id) = bench_server::server(dir.path(), config)?;
    let id = id.to_string();
    let body = tokio::runtime::Runtime::new()?.block_on(async {
        let body = reqwest::Client::new()
            .get(format!("{url}/v1/sessions/{id}"))
            .bearer_auth(&admin_key)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok::<_, Error>(body)
    })?;

    // The bare handler of the same shape.
    let bare = Bare {
        key: admin_key.clone(),
        id: id.clone(),
        session: std::sync::Arc::new(serde_json::from_str(&body)?),
    };
    let bare_url = serve_bare(bare)?;

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
    // Each round measures both back to back; this VM's speed drifts between rounds, so the
    // ratio is the median of the rounds' ratios.
    let mut ratios: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(o, b)| o.rps / b.rps)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    println!(
        "GET /v1/sessions/{{id}}, wrk -t2 -c16, {rounds} rounds of {seconds} s (medians): \
         onmemos {o_rps:.0} req/s (p50 {:.2} ms, p99 {:.2} ms); bare axum {b_rps:.0} req/s \
         (p50 {:.2} ms, p99 {:.2} ms); ratio {ratio:.2} (median of the rounds' ratios)",
        median(&ours, |f| f.p50_ms),
        median(&ours, |f| f.p99_ms),
        median(&theirs, |f| f.p50_ms),
        median(&theirs, |f| f.p99_ms),
    );
    Ok(())
}
