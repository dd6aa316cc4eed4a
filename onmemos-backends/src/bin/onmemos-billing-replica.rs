//! A billing replica for simulations, crash tests and benchmarks: an engine over a database,
//! with no compute and a clock that moves only when told. Commands come on stdin, one a line;
//! each answer is one line on stdout.
//!
//! - `seed <n> <per_user> <t0_ms>`: seeds `n` running sessions started at `t0`
//!   ([`onmemos_backends::testing::seed_fleet`]); answers `seeded <n>`.
//! - `tick <ms>`: the monitor ticks every session due at that moment that this replica can
//!   lease; answers `ticked <sessions> errors <n> micros <elapsed>`.
//!
//! Usage: `onmemos-billing-replica <database-url> <node> [billing-batch]`. Checks every 10 s,
//! 5-minute holds, 5-second leases. With `ONMEMOS_BILLING_STORAGE` set to a storage URL
//! (`file:///dir`), the engine has that storage, and ticks check its workspaces' quotas as a
//! server's do.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use onmemos_backends::db::SqlDatabase;
use onmemos_core::clock::{Clock, ManualClock};
use onmemos_core::monitor::PassReport;
use onmemos_core::{Engine, EngineConfig, SessionSettings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn at(ms: &str) -> Result<DateTime<Utc>, String> {
    let ms: i64 = ms.parse().map_err(|e| format!("bad time {ms:?}: {e}"))?;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("time out of range: {ms}"))
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: onmemos-billing-replica <database-url> <node> [batch]")?;
    let node = args.next().unwrap_or_else(|| "replica".into());
    let batch: u32 = match args.next() {
        Some(b) => b.parse().map_err(|e| format!("bad batch {b:?}: {e}"))?,
        None => SessionSettings::default().billing_batch,
    };
    let db = Arc::new(SqlDatabase::open(&url).await.map_err(|e| e.to_string())?);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let config = EngineConfig {
        sessions: SessionSettings {
            check_interval_ms: 10_000,
            billing_window_secs: 300,
            lease_secs: 5,
            node: Some(node.clone()),
            billing_batch: batch,
            ..SessionSettings::default()
        },
        ..EngineConfig::default()
    };
    let interval = config.sessions.check_interval();
    let window = config.sessions.billing_window();
    let mut builder = Engine::builder(db.clone())
        .with_clock(clock.clone())
        .with_config(config);
    let storage = match std::env::var("ONMEMOS_BILLING_STORAGE") {
        Ok(url) => Some(
            onmemos_backends::storage::connect(&url, &Default::default(), &std::env::temp_dir())
                .map_err(|e| e.to_string())?,
        ),
        Err(_) => None,
    };
    if let Some(storage) = &storage {
        builder = builder.with_storage(storage.clone());
    }
    let engine = builder.build().await.map_err(|e| e.to_string())?;
    let monitor = engine.monitor();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["seed", n, per_user, t0] => {
                let n: usize = n.parse().map_err(|e| format!("bad n: {e}"))?;
                let per_user: usize = per_user.parse().map_err(|e| format!("bad per_user: {e}"))?;
                let fleet = onmemos_backends::testing::seed_fleet(
                    &db,
                    n,
                    per_user,
                    at(t0)?,
                    interval,
                    window,
                    &node,
                )
                .await
                .map_err(|e| e.to_string())?;
                if let Some(storage) = &storage {
                    seed_files(storage.as_ref(), &fleet).await?;
                }
                format!("seeded {}", fleet.sessions.len())
            }
            ["tick", ms] => {
                let now = at(ms)?;
                clock.set(now);
                let started = Instant::now();
                let mut report = PassReport::default();
                monitor
                    .tick_due(clock.now(), &mut report)
                    .await
                    .map_err(|e| e.to_string())?;
                format!(
                    "ticked {} errors {} micros {}",
                    report.ticked,
                    report.errors,
                    started.elapsed().as_micros()
                )
            }
            _ => return Err(format!("unknown command {line:?}")),
        };
        out.write_all(format!("{answer}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        out.flush().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Files each seeded workspace holds when the replica has storage, and their size: what a
/// tick's quota check measures.
const FILES_PER_WORKSPACE: usize = 20;
const FILE_BYTES: usize = 1024;

async fn seed_files(
    storage: &dyn onmemos_core::ports::StorageProvider,
    fleet: &onmemos_backends::testing::Fleet,
) -> Result<(), String> {
    let mut workspaces: Vec<_> = fleet
        .sessions
        .iter()
        .map(|s| s.session.workspace_id)
        .collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    for ws in workspaces {
        for i in 0..FILES_PER_WORKSPACE {
            let body = bytes::Bytes::from(vec![b'x'; FILE_BYTES]);
            let stream: onmemos_core::ports::storage::ByteStream =
                Box::pin(futures_util::stream::once(async move { Ok(body) }));
            storage
                .put(
                    &format!(
                        "{}data/{i}.bin",
                        onmemos_core::services::workspace_prefix(ws)
                    ),
                    stream,
                    Default::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("onmemos-billing-replica: {e}");
        std::process::exit(1);
    }
}
