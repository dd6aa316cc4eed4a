//! The stand-in's throughput: pods created, scheduled and Running per second, and watch
//! events delivered per second to 10 watchers, with 1,000 pods — next to an axum hello-world
//! handler on the same machine in the same run (the baseline).
//!
//! `cargo run --release -p onmemos-kube-standin --features kube --example bench_standin -- [pods]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use onmemos_kube_standin::{NodeSpec, StandIn};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Requests per second an axum hello-world handler answers over loopback, with the same
/// client concurrency as the pod creations.
async fn baseline(requests: usize, concurrency: usize) -> Result<f64, Error> {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse()?))?;
    let started = Instant::now();
    futures::stream::iter(0..requests)
        .map(|_| {
            let client = client.clone();
            async move {
                let request = http::Request::get("/").body(Vec::new()).unwrap_or_default();
                client.request_text(request).await
            }
        })
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
    Ok(requests as f64 / started.elapsed().as_secs_f64())
}

/// A raw watch of every pod that counts the events it receives.
async fn watcher(addr: std::net::SocketAddr, count: Arc<AtomicU64>) -> Result<(), Error> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(b"GET /api/v1/pods?watch=true&resourceVersion=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut lines = tokio::io::BufReader::new(conn).lines();
    while let Some(line) = lines.next_line().await? {
        if line.contains("\"type\":") {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pods_wanted: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let concurrency = 16;
    let hello = baseline(5000, concurrency).await?;

    let standin = StandIn::start().await?;
    for i in 0..10 {
        standin
            .cluster()
            .add_node(&NodeSpec::new(&format!("node-{i}")).capacity(64_000, 256 << 30, 200))?;
    }
    let events = Arc::new(AtomicU64::new(0));
    for _ in 0..10 {
        let events = events.clone();
        let addr = standin.addr();
        tokio::spawn(async move { watcher(addr, events).await });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = standin.client()?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let started = Instant::now();
    futures::stream::iter(0..pods_wanted)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": { "name": format!("p-{i}") },
                    "spec": { "containers": [{ "name": "main", "image": "busybox", "command": ["sleep", "600"] }] }
                }))?;
                pods.create(&PostParams::default(), &pod).await?;
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .for_each(|r| async move {
            if let Err(e) = r {
                eprintln!("create: {e}");
            }
        })
        .await;
    let created = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let running_at = loop {
        let list = pods.list(&Default::default()).await?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if running >= pods_wanted {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!("only {running} of {pods_wanted} pods ran within 600 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = events.load(Ordering::Relaxed) as f64;
    let created_rate = pods_wanted as f64 / created.as_secs_f64();
    let running_rate = pods_wanted as f64 / running_at.as_secs_f64();
    let event_rate = delivered / (running_at.as_secs_f64() + 0.5);
    println!("baseline: axum hello-world, {concurrency} at once: {hello:.0} requests/s");
    println!(
        "pods created: {created_rate:.0}/s ({pods_wanted} in {:.2} s) = {:.3} of the baseline",
        created.as_secs_f64(),
        created_rate / hello
    );
    println!(
        "pods created, scheduled and Running: {running_rate:.0}/s ({pods_wanted} in {:.2} s) = {:.3} of the baseline",
        running_at.as_secs_f64(),
        running_rate / hello
    );
    println!(
        "watch events delivered to 10 watchers: {event_rate:.0}/s ({delivered:.0} events) = {:.3} of the baseline",
        event_rate / hello
    );
    drop(standin);
    Ok(())
}
