//! Storage billing on a simulated clock, on SQLite and PostgreSQL: usage is sampled per
//! workspace and charged per GiB-month exactly (to the micro-credit, however time is split),
//! each step once (re-running a pass, or replaying a step interrupted halfway, charges
//! nothing more), and what the credits cannot cover is carried as owed.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use onmemos_backends::db::SqlDatabase;
use onmemos_backends::storage::ObjectStorage;
use onmemos_core::clock::ManualClock;
use onmemos_core::id::WorkspaceId;
use onmemos_core::model::{
    GIB_MONTH_BYTE_MS, LedgerOp, MicroCredits, PriceBook, StorageUsageRecord, TransferId,
};
use onmemos_core::ports::{Database, StorageProvider};
use onmemos_core::services::UploadOptions;
use onmemos_core::testing::storage::bytes_stream;
use onmemos_core::{Engine, EngineConfig, Principal, StorageSettings};

/// µcr per GiB-month: high, so small test objects cost whole micro-credits.
const PRICE: i64 = 7_000_000_000;
const HOUR: i64 = 3600;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

struct World {
    engine: Engine,
    db: Arc<dyn Database>,
    store: Arc<dyn StorageProvider>,
    clock: Arc<ManualClock>,
    user: Principal,
    workspace: WorkspaceId,
}

async fn world(db: SqlDatabase, credits: MicroCredits) -> World {
    let db: Arc<dyn Database> = Arc::new(db);
    let clock = Arc::new(ManualClock::new(t0()));
    let store: Arc<dyn StorageProvider> = Arc::new(ObjectStorage::memory());
    let config = EngineConfig {
        pricing: PriceBook {
            storage_gib_month: PRICE,
            ..PriceBook::default()
        },
        storage: StorageSettings {
            billing_interval_secs: HOUR as u64,
            ..StorageSettings::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::builder(db.clone())
        .with_clock(clock.clone())
        .with_storage(store.clone())
        .with_config(config)
        .build()
        .await
        .unwrap_or_else(|e| panic!("engine: {e}"));
    let (user, workspace) = common::member_with_workspace(&engine, "data", credits).await;
    World {
        engine,
        db,
        store,
        clock,
        user,
        workspace,
    }
}

impl World {
    async fn grant(&self, amount: MicroCredits) {
        common::grant(&self.engine, self.user.user_id(), amount).await;
    }

    /// Makes the workspace hold exactly `bytes` bytes (one object).
    async fn hold_bytes(&self, bytes: usize) {
        let body = bytes_stream(vec![Bytes::from(vec![7u8; bytes])]);
        let upload = UploadOptions {
            length: Some(bytes as u64),
            ..UploadOptions::default()
        };
        self.engine
            .storage()
            .upload(&self.user, self.workspace, "blob.bin", body, upload)
            .await
            .unwrap_or_else(|e| panic!("upload: {e}"));
    }

    async fn pass(&self) {
        let report = self
            .engine
            .monitor()
            .run_once()
            .await
            .unwrap_or_else(|e| panic!("pass: {e}"));
        assert_eq!(report.errors, 0, "{report:?}");
    }

    async fn record(&self) -> StorageUsageRecord {
        self.db
            .storage_usage()
            .get(self.workspace)
            .await
            .unwrap_or_else(|e| panic!("record: {e}"))
            .unwrap_or_else(|| panic!("the workspace is not enrolled"))
    }

    /// The storage charges in the ledger: (transfer id, amount).
    async fn storage_posts(&self) -> Vec<(String, MicroCredits)> {
        let prefix = format!("{}.storage.", self.workspace);
        common::all_posts(self.db.as_ref())
            .await
            .iter()
            .filter(|t| t.id.as_str().starts_with(&prefix))
            .map(|t| (t.id.as_str().to_owned(), t.amount))
            .collect()
    }

    async fn available(&self) -> MicroCredits {
        self.engine
            .credits()
            .balance(&self.user)
            .await
            .unwrap_or_else(|e| panic!("balance: {e}"))
            .available
    }
}

/// `floor(PRICE × Σ bytes·ms / GiB-month)`: the exact charge of a usage history.
fn exact(byte_ms: i128) -> MicroCredits {
    (i128::from(PRICE) * byte_ms / GIB_MONTH_BYTE_MS) as MicroCredits
}

#[tokio::test]
async fn storage_is_charged_per_gib_month_exactly_and_once() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000_000).await;
        let start = w.available().await;
        w.pass().await;
        let first = w.record().await;
        assert_eq!((first.step, first.bytes), (1, 0), "{name}: sampled at once");

        // Usage changes between samples; samples come at uneven moments.
        let plan: [(usize, i64); 5] = [
            (3_000_017, HOUR * 1000 + 17),
            (5_500_000, HOUR * 1000 * 2 + 3),
            (1_234_567, HOUR * 1000 + 999),
            (0, HOUR * 1000 * 5),
            (8_000_000, HOUR * 1000 + 1),
        ];
        let mut byte_ms: i128 = 0;
        let mut held: i128 = 0;
        for (bytes, after_ms) in plan {
            if bytes == 0 {
                w.store
                    .delete_prefix(&format!("workspaces/{}/", w.workspace))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            } else {
                w.hold_bytes(bytes).await;
            }
            // A pass before the interval has passed samples nothing.
            let early = 10 * 60 * 1000;
            w.clock.advance(Duration::milliseconds(early));
            let before = w.record().await;
            w.pass().await;
            assert_eq!(
                w.record().await,
                before,
                "{name}: sampled before it was due"
            );
            w.clock.advance(Duration::milliseconds(after_ms - early));
            w.pass().await;
            // The time since the last sample is charged at the bytes that sample measured.
            byte_ms += held * i128::from(after_ms);
            held = bytes as i128;
            // Running the pass again at the same moment charges nothing more.
            let posts = w.storage_posts().await;
            w.pass().await;
            assert_eq!(w.storage_posts().await, posts, "{name}: charged twice");
        }
        let record = w.record().await;
        let posts = w.storage_posts().await;
        let total: MicroCredits = posts.iter().map(|(_, a)| a).sum();
        assert!(
            exact(byte_ms) > 1000,
            "{name}: the test charges too little to mean anything"
        );
        assert_eq!(
            total,
            exact(byte_ms),
            "{name}: charged {total}, exact is {}",
            exact(byte_ms)
        );
        assert_eq!(record.charged, total, "{name}");
        assert_eq!((record.owed, record.pending), (0, None), "{name}");
        assert_eq!(record.bytes, 8_000_000, "{name}");
        assert_eq!(
            start - w.available().await,
            total,
            "{name}: the balance moved by the charges"
        );
        let ids: std::collections::BTreeSet<&str> =
            posts.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids.len(), posts.len(), "{name}: one transfer per step");
        let recon = w
            .engine
            .credits()
            .reconcile()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(recon.drift.is_empty(), "{name}: {recon:?}");
        assert_eq!(recon.net_pending, 0, "{name}: a storage hold stayed open");
    }
}

#[tokio::test]
async fn a_step_interrupted_halfway_is_finished_once() {
    for (name, db) in common::databases().await {
        let w = world(db, 1_000_000_000).await;
        w.pass().await;
        w.hold_bytes(4_000_000).await;
        w.clock.advance(Duration::hours(1));
        w.pass().await;
        w.clock.advance(Duration::hours(3));
        // As if a pass wrote the next step's charge, then died before the ledger saw it.
        let r = w.record().await;
        let amount = exact(4_000_000 * 3 * i128::from(HOUR) * 1000);
        let written = StorageUsageRecord {
            step: r.step + 1,
            sampled_at: w.clock.now_plus(Duration::zero()),
            pending: Some(amount),
            next_sample_at: w.clock.now_plus(Duration::hours(1)),
            version: r.version + 1,
            carry: 0,
            ..r.clone()
        };
        assert!(
            w.db.storage_usage()
                .update(&written)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            "{name}"
        );
        // …and as if it even placed the hold and the post, but not the record's update.
        let hold = TransferId::new(format!("{}.storage-hold.{}", w.workspace, written.step))
            .unwrap_or_else(|e| panic!("{e}"));
        let post = TransferId::new(format!("{}.storage.{}", w.workspace, written.step))
            .unwrap_or_else(|e| panic!("{e}"));
        for op in [
            LedgerOp::Hold {
                id: hold.clone(),
                user: w.user.user_id(),
                amount,
                timeout_at: w.clock.now_plus(Duration::hours(1)),
                reference: None,
            },
            LedgerOp::Post {
                id: post.clone(),
                hold,
                amount,
            },
        ] {
            w.engine
                .credits()
                .execute(&op)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let paid_before = r.charged;
        w.pass().await;
        let after = w.record().await;
        assert_eq!(after.pending, None, "{name}");
        assert_eq!(
            after.charged,
            paid_before + amount,
            "{name}: the step counted once"
        );
        let posts = w.storage_posts().await;
        let total: MicroCredits = posts.iter().map(|(_, a)| a).sum();
        assert_eq!(total, after.charged, "{name}: the ledger agrees");
        assert_eq!(
            posts.iter().filter(|(id, _)| id == post.as_str()).count(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn storage_the_credits_cannot_cover_is_carried_as_owed() {
    for (name, db) in common::databases().await {
        let w = world(db, 10).await;
        w.pass().await;
        w.hold_bytes(6_000_000).await;
        // The first sample after the upload measures it; the time after it is charged.
        w.clock.advance(Duration::hours(1));
        w.pass().await;
        assert_eq!(w.record().await.bytes, 6_000_000, "{name}");
        w.clock.advance(Duration::hours(2));
        w.pass().await;
        let due = exact(6_000_000 * 2 * i128::from(HOUR) * 1000);
        assert!(due > 10, "{name}");
        let r = w.record().await;
        assert_eq!((r.charged, r.owed, r.pending), (0, due, None), "{name}");
        assert!(
            w.storage_posts().await.is_empty(),
            "{name}: nothing was taken"
        );
        assert_eq!(w.available().await, 10, "{name}: the credits are untouched");
        let usage = w
            .engine
            .storage()
            .usage(&w.user, w.workspace)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(usage.owed_micros, due, "{name}");

        // Credits arrive: the next charge takes what was owed too.
        w.grant(1_000_000_000).await;
        w.clock.advance(Duration::hours(1));
        w.pass().await;
        let r = w.record().await;
        let total = exact(6_000_000 * 3 * i128::from(HOUR) * 1000);
        assert_eq!((r.charged, r.owed), (total, 0), "{name}");
        let posted: MicroCredits = w.storage_posts().await.iter().map(|(_, a)| a).sum();
        assert_eq!(posted, total, "{name}");
    }
}

#[tokio::test]
async fn uploads_are_confined_by_the_quota_in_process_too() {
    let (_, db) = common::databases().await.remove(0);
    let w = world(db, 0).await;
    let engine = Engine::builder(w.db.clone())
        .with_storage(w.store.clone())
        .with_config(EngineConfig {
            storage: StorageSettings {
                quota_bytes: 1000,
                ..StorageSettings::default()
            },
            ..EngineConfig::default()
        })
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = engine
        .storage()
        .upload(
            &w.user,
            w.workspace,
            "x.bin",
            bytes_stream(vec![
                Bytes::from(vec![1u8; 600]),
                Bytes::from(vec![2u8; 600]),
            ]),
            UploadOptions::default(),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("an upload over the quota was stored"));
    assert_eq!(refused.code(), onmemos_core::api::ErrorCode::QuotaExceeded);
    let left = w
        .store
        .list("", None, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.objects.is_empty(), "{left:?}");
}
