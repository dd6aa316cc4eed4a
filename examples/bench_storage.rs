//! Storage through the server, next to object_store used directly in the same run:
//! - upload and download of one file (1 GiB by default) through `onmemos serve` (a separate
//!   process, its storage on the local file system or on S3), with the typed client streaming
//!   from and to disk;
//! - the same put and get with `object_store` directly against the same kind of store;
//! - the server's resident memory before and (sampled every 10 ms) during each transfer.
//!
//! Usage: `bench_storage <onmemos binary> <megabytes> [s3 endpoint]`; see
//! `scripts/bench-storage.sh`, which builds everything and starts moto.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use onmemos::client::Client;
use onmemos::core::api::CreateWorkspace;
use tokio::io::AsyncReadExt;

const PART: usize = 8 * 1024 * 1024;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples the RSS of `pid` every 10 ms until stopped; returns the peak (KiB).
struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { stop, peak, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn onmemos(bin: &Path, data: &Path, storage: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_remove("ONMEMOS_API_KEY")
        .env_remove("ONMEMOS_URL")
        .env("ONMEMOS_DATA_DIR", data)
        .env("ONMEMOS_COMPUTE_URL", "none")
        .env(
            "ONMEMOS_ENGINE__STORAGE__QUOTA_BYTES",
            (1u64 << 40).to_string(),
        );
    for (k, v) in storage {
        cmd.env(k, v);
    }
    cmd
}

async fn start(bin: &Path, data: &Path, storage: &[(String, String)]) -> (Server, String) {
    let out = onmemos(bin, data, storage)
        .args([
            "--json",
            "admin",
            "create-user",
            "--email",
            "bench@example.com",
        ])
        .output()
        .unwrap_or_else(|e| panic!("create-user: {e}"));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "create-user ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let key = created["api_key"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let child = onmemos(bin, data, storage)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("serve: {e}"));
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http.get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Server { child, url }, key)
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1_048_576.0 / d.as_secs_f64()
}

/// Direct object_store: put the file in parts, then get it as a stream.
async fn direct(store: Arc<dyn ObjectStore>, file: &Path) -> (Duration, Duration) {
    let location = object_store::path::Path::from("direct/bench.bin");
    let started = Instant::now();
    let upload = store
        .put_multipart(&location)
        .await
        .unwrap_or_else(|e| panic!("put_multipart: {e}"));
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut f = tokio::fs::File::open(file)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        writer
            .wait_for_capacity(3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let n = f.read(&mut buf).await.unwrap_or_else(|e| panic!("{e}"));
        if n == 0 {
            break;
        }
        writer.write(&buf[..n]);
    }
    writer
        .finish()
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    let put = started.elapsed();
    let started = Instant::now();
    let mut body = store
        .get(&location)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .into_stream();
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk.unwrap_or_else(|e| panic!("{e}")).len();
    }
    assert!(n > 0);
    (put, started.elapsed())
}

async fn through_server(
    bin: &Path,
    data: &Path,
    storage: &[(String, String)],
    file: &Path,
) -> Measured {
    let (server, key) = start(bin, data, storage).await;
    let pid = server.child.id();
    let client = Client::builder()
        .base_url(&server.url)
        .api_key(key)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ws = client
        .workspaces()
        .create(&CreateWorkspace {
            name: "bench".into(),
            description: None,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("workspace: {e}"))
        .id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_kib(pid);
    let peak = PeakRss::start(pid);
    let started = Instant::now();
    client
        .storage()
        .upload_file(ws, "bench.bin", file, None)
        .await
        .unwrap_or_else(|e| panic!("upload: {e}"));
    let up = started.elapsed();
    let peak_up = peak.finish().await;
    let peak = PeakRss::start(pid);
    let started = Instant::now();
    let mut body = client
        .storage()
        .download(ws, "bench.bin", None)
        .await
        .unwrap_or_else(|e| panic!("download: {e}"))
        .body;
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        n += chunk.unwrap_or_else(|e| panic!("{e}")).len() as u64;
    }
    let down = started.elapsed();
    let peak_down = peak.finish().await;
    assert_eq!(n, std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
    let peak = PeakRss::start(pid);
    let started = Instant::now();
    client
        .storage()
        .upload_file_resumable(ws, "parts.bin", file, None, |_| {}, None)
        .await
        .unwrap_or_else(|e| panic!("upload in parts: {e}"));
    let parts = started.elapsed();
    let peak_parts = peak.finish().await;
    drop(server);
    Measured {
        up,
        down,
        parts,
        idle,
        peak_up,
        peak_down,
        peak_parts,
    }
}

/// One server's figures: transfer times, and resident memory idle and at its peak during
/// each transfer (KiB).
#[derive(Debug, Clone, Copy)]
struct Measured {
    up: Duration,
    down: Duration,
    parts: Duration,
    idle: u64,
    peak_up: u64,
    peak_down: u64,
    peak_parts: u64,
}

/// The faster of two baseline runs, per direction (one before and one after the server's,
/// so neither order nor a warming cache favours either side).
fn best(a: (Duration, Duration), b: (Duration, Duration)) -> (Duration, Duration) {
    (a.0.min(b.0), a.1.min(b.1))
}

/// Reads `file` in 1 MiB chunks: the most a download from the local disk could do.
async fn raw_read(file: &Path) -> Duration {
    let started = Instant::now();
    let mut f = tokio::fs::File::open(file)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 1024 * 1024];
    let mut n = 0;
    loop {
        let got = f.read(&mut buf).await.unwrap_or_else(|e| panic!("{e}"));
        if got == 0 {
            break;
        }
        n += got;
    }
    assert!(n > 0);
    started.elapsed()
}

fn report(name: &str, bytes: u64, ours: Measured, base: (Duration, Duration)) {
    let ratio = |base: Duration, ours: Duration| base.as_secs_f64() / ours.as_secs_f64();
    println!(
        "{name}: upload {:.0} MiB/s vs direct {:.0} MiB/s (ratio {:.2}); download {:.0} MiB/s vs direct {:.0} MiB/s (ratio {:.2}); resumable upload in parts {:.0} MiB/s (ratio {:.2})",
        mib_s(bytes, ours.up),
        mib_s(bytes, base.0),
        ratio(base.0, ours.up),
        mib_s(bytes, ours.down),
        mib_s(bytes, base.1),
        ratio(base.1, ours.down),
        mib_s(bytes, ours.parts),
        ratio(base.0, ours.parts),
    );
    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{name}: server RSS idle {:.1} MB; peak during upload +{:.1} MB, download +{:.1} MB, upload in parts +{:.1} MB",
        mb(ours.idle),
        mb(ours.peak_up.saturating_sub(ours.idle)),
        mb(ours.peak_down.saturating_sub(ours.idle)),
        mb(ours.peak_parts.saturating_sub(ours.idle)),
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "target/release/onmemos".into()),
    );
    let mib: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let s3 = args.get(3).cloned();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("bench.bin");
    {
        let chunk = onmemos::core::testing::storage::pattern(7, 1024 * 1024);
        let mut f = std::fs::File::create(&file).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..mib {
            std::io::Write::write_all(&mut f, &chunk).unwrap_or_else(|e| panic!("{e}"));
        }
        // Written back now, so no run pays for it.
        f.sync_all().unwrap_or_else(|e| panic!("{e}"));
    }
    let bytes = mib * 1024 * 1024;
    println!("file: {mib} MiB");

    // Local file system.
    let base_dir = dir.path().join("direct-local");
    std::fs::create_dir_all(&base_dir).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(&base_dir)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let before = direct(store.clone(), &file).await;
    let ours = through_server(&bin, &dir.path().join("server-local"), &[], &file).await;
    let _ = std::fs::remove_dir_all(dir.path().join("server-local"));
    let after = direct(store, &file).await;
    let _ = std::fs::remove_dir_all(&base_dir);
    report("local", bytes, ours, best(before, after));
    let read = raw_read(&file).await;
    println!(
        "local: download {:.0} MiB/s vs reading the file in 1 MiB chunks {:.0} MiB/s (ratio {:.2})",
        mib_s(bytes, ours.down),
        mib_s(bytes, read),
        read.as_secs_f64() / ours.down.as_secs_f64(),
    );

    // S3 on moto.
    if let Some(endpoint) = s3 {
        let options = [
            ("endpoint", endpoint.as_str()),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "test"),
            ("secret_access_key", "test"),
            ("virtual_hosted_style_request", "false"),
        ];
        let map = options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // Opening the provider also installs the TLS provider the direct store needs.
        let _ = onmemos::backends::storage::connect("s3://onmemos-test/bench", &map, dir.path());
        let mut builder =
            object_store::aws::AmazonS3Builder::new().with_bucket_name("onmemos-test");
        for (k, v) in options {
            builder = builder.with_config(k.parse().unwrap_or_else(|e| panic!("{e}")), v);
        }
        let store = Arc::new(builder.build().unwrap_or_else(|e| panic!("{e}")));
        let before = direct(store.clone(), &file).await;
        let mut env = vec![(
            "ONMEMOS_STORAGE_URL".to_owned(),
            "s3://onmemos-test/server".to_owned(),
        )];
        for (k, v) in options {
            env.push((
                format!("ONMEMOS_STORAGE_OPTIONS__{}", k.to_uppercase()),
                v.to_owned(),
            ));
        }
        let ours = through_server(&bin, &dir.path().join("server-s3"), &env, &file).await;
        let after = direct(store, &file).await;
        report("s3 (moto)", bytes, ours, best(before, after));
    }
}
