//! Client overhead: `client.sessions().get(id)` against raw `reqwest` issuing the same request
//! (same URL, bearer key, and decoding into the same `Session`), to the same in-process server,
//! in the same run.
//!
//! `cargo run --release --features client --example bench_client -- [rounds] [requests]` (defaults 5, 2000)
//!
//! Each round measures both, in alternating order: sequential requests (p50 latency and
//! requests per second) and 16 requests in flight (requests per second). The printed figures
//! are medians over the rounds; the ratios are client / raw for throughput and raw / client for
//! latency, so 1.0 means no overhead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use onmemos::client::Client;
use onmemos::client::id::SessionId;
use onmemos::client::model::Session;

#[path = "support/bench_server.rs"]
mod bench_server;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Requests in flight in the concurrent phase.
const IN_FLIGHT: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Figures {
    p50: Duration,
    sequential_rps: f64,
    concurrent_rps: f64,
}

/// One way of fetching the session.
#[derive(Clone)]
enum Fetch {
    Client(Client),
    Raw {
        http: reqwest::Client,
        url: Arc<str>,
        key: Arc<str>,
    },
}

impl Fetch {
    async fn once(&self, id: SessionId) -> Result<Session, Error> {
        match self {
            Fetch::Client(client) => Ok(client.sessions().get(id).await?),
            Fetch::Raw { http, url, key } => Ok(http
                .get(&**url)
                .bearer_auth(&**key)
                .send()
                .await?
                .error_for_status()?
                .json::<Session>()
                .await?),
        }
    }

    async fn measure(&self, id: SessionId, requests: usize) -> Result<Figures, Error> {
        let mut latencies = Vec::with_capacity(requests);
        let start = Instant::now();
        for _ in 0..requests {
            let t = Instant::now();
            let session = self.once(id).await?;
            latencies.push(t.elapsed());
            assert_eq!(session.id, id);
        }
        let sequential = start.elapsed();
        latencies.sort();
        let start = Instant::now();
        let results: Vec<_> = futures::stream::iter(0..requests)
            .map(|_| self.once(id))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let concurrent = start.elapsed();
        for r in results {
            r?;
        }
        Ok(Figures {
            p50: latencies[requests / 2],
            sequential_rps: requests as f64 / sequential.as_secs_f64(),
            concurrent_rps: requests as f64 / concurrent.as_secs_f64(),
        })
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let requests: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let (url, key, id) = bench_server::server(dir.path(), unlimited())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = Fetch::Client(Client::builder().base_url(&url).api_key(&key).build()?);
        let raw = Fetch::Raw {
            http: reqwest::Client::new(),
            url: format!("{url}/v1/sessions/{id}").into(),
            key: key.as_str().into(),
        };
        // Warm both connection pools and the server's caches.
        client.measure(id, 200).await?;
        raw.measure(id, 200).await?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            if round % 2 == 0 {
                ours.push(client.measure(id, requests).await?);
                theirs.push(raw.measure(id, requests).await?);
            } else {
                theirs.push(raw.measure(id, requests).await?);
                ours.push(client.measure(id, requests).await?);
            }
        }
        let p50 = |f: &[Figures]| median(f.iter().map(|x| x.p50.as_secs_f64() * 1e6).collect());
        let seq = |f: &[Figures]| median(f.iter().map(|x| x.sequential_rps).collect());
        let conc = |f: &[Figures]| median(f.iter().map(|x| x.concurrent_rps).collect());
        println!(
            "client overhead: sessions().get, {rounds} rounds × {requests} requests, medians"
        );
        println!(
            "  sequential   raw reqwest {:>8.0} req/s  p50 {:>6.0} µs | client {:>8.0} req/s  p50 {:>6.0} µs | ratio {:.3} (p50 {:.3})",
            seq(&theirs),
            p50(&theirs),
            seq(&ours),
            p50(&ours),
            seq(&ours) / seq(&theirs),
            p50(&theirs) / p50(&ours),
        );
        println!(
            "  {IN_FLIGHT} in flight  raw reqwest {:>8.0} req/s              | client {:>8.0} req/s              | ratio {:.3}",
            conc(&theirs),
            conc(&ours),
            conc(&ours) / conc(&theirs),
        );
        Ok::<_, Error>(())
    })?;
    Ok(())
}

/// The server's settings without the per-key rate limit: the benchmark measures the client.
fn unlimited() -> onmemos::server::ServerConfig {
    onmemos::server::ServerConfig {
        rate_limit_per_second: 0,
        ..Default::default()
    }
}
