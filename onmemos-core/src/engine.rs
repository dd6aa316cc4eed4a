//! The [`Engine`]: the ports and the configuration, and the services built over them.
//!
//! A program can use the engine in-process, without HTTP; the server is a thin layer over it.
//!
//! ```no_run
//! # async fn demo(db: std::sync::Arc<dyn onmemos_core::ports::Database>) -> onmemos_core::Result<()> {
//! use onmemos_core::{Engine, Principal};
//! use onmemos_core::api::{CreateUser, CreateWorkspace};
//!
//! let engine = Engine::builder(db).build().await?;
//! let created = engine.users().bootstrap(CreateUser {
//!     email: "ada@example.com".into(), name: None, role: None,
//! }).await?;
//! let ada = Principal::for_user(&created.user);
//! let ws = engine.workspaces().create(&ada, CreateWorkspace {
//!     name: "research".into(), description: None, env: Default::default(),
//! }).await?;
//! assert_eq!(ws.name, "research");
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::model::SessionLimits;
use crate::ports::{ComputeProvider, Database, Optimizer, StorageProvider};

/// Settings of the engine. Deserializable, so a TOML file, env vars and code agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Limits a session gets when neither the request nor its template sets them.
    pub default_limits: SessionLimits,
    /// The most any session may ask for.
    pub max_limits: SessionLimits,
    /// `last_used_at` of an API key is written at most once per this many seconds.
    pub key_touch_interval_secs: u64,
    /// Prices.
    pub pricing: crate::model::PriceBook,
    /// How sessions are billed and watched.
    pub sessions: SessionSettings,
    /// Workspace storage: quota, billing, presigned URLs.
    pub storage: StorageSettings,
}

/// Settings of workspace storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// The most one workspace may store, in bytes.
    pub quota_bytes: u64,
    /// How often each workspace's usage is sampled and charged, in seconds.
    pub billing_interval_secs: u64,
    /// The longest a presigned URL may work, in seconds (S3 allows at most 7 days).
    pub presign_max_secs: u64,
    /// How long a resumable upload may stay incomplete before it is abandoned and its parts
    /// freed, in seconds.
    pub upload_ttl_secs: u64,
    /// How many parts of resumable uploads the server holds in memory at once (each up to a
    /// part, 8 MiB); further parts wait, unread, for their turn. One tenant holds at most half
    /// of them (at least one), so no tenant can keep the others waiting.
    pub parts_in_memory: usize,
    /// The slowest a part may arrive once its first bytes did, in bytes per second: a part
    /// of `n` bytes must be complete within `n / part_min_bytes_per_sec` seconds (at least
    /// one), or it is refused (408) and its memory freed.
    pub part_min_bytes_per_sec: u64,
}

impl Default for StorageSettings {
    /// 10 GiB per workspace, sampled hourly, presigned URLs for up to an hour, resumable
    /// uploads kept for a day with two parts in memory at once.
    fn default() -> Self {
        Self {
            quota_bytes: 10 << 30,
            billing_interval_secs: 3600,
            presign_max_secs: 3600,
            upload_ttl_secs: 86_400,
            parts_in_memory: 2,
            part_min_bytes_per_sec: 64 * 1024,
        }
    }
}

impl StorageSettings {
    /// [`Self::billing_interval_secs`] as a duration.
    pub fn billing_interval(&self) -> chrono::Duration {
        duration(self.billing_interval_secs, chrono::Duration::seconds(1))
    }

    fn validate(&self) -> Result<()> {
        if self.billing_interval_secs == 0 {
            return Err(Error::configuration(
                "storage.billing_interval_secs must be at least 1",
            ));
        }
        if self.parts_in_memory == 0 {
            return Err(Error::configuration(
                "storage.parts_in_memory must be at least 1",
            ));
        }
        if self.part_min_bytes_per_sec == 0 {
            return Err(Error::configuration(
                "storage.part_min_bytes_per_sec must be at least 1",
            ));
        }
        if self.upload_ttl_secs == 0 {
            return Err(Error::configuration(
                "storage.upload_ttl_secs must be at least 1",
            ));
        }
        if !(1..=7 * 86_400).contains(&self.presign_max_secs) {
            return Err(Error::configuration(
                "storage.presign_max_secs must be between 1 and 604800 (7 days)",
            ));
        }
        Ok(())
    }
}

/// How sessions are billed and watched by the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// How often the monitor charges and checks each running session, in milliseconds.
    pub check_interval_ms: u64,
    /// Each hold reserves this many seconds of a session's cost ahead; must be longer than the
    /// check interval.
    pub billing_window_secs: u64,
    /// A warning event comes this many seconds before a limit stops a session.
    pub warning_lead_secs: u64,
    /// A replica's claim on a session's tick lasts this many seconds.
    pub lease_secs: u64,
    /// The name of this server among replicas: sessions on local compute belong to the node
    /// that started them. Default: the host name.
    pub node: Option<String>,
    /// How long a session's terminal stays open after its last attachment (shell socket)
    /// leaves, in seconds: one that comes back within it gets the same shell and its
    /// scrollback.
    pub terminal_grace_secs: u64,
    /// Most due sessions a monitor claims and bills at once: their charges and next holds go
    /// to the ledger as one batch, their records and events in one transaction.
    pub billing_batch: u32,
}

impl Default for SessionSettings {
    /// Checks every 10 s, 5-minute holds and warnings, 60-second leases and terminal grace,
    /// batches of 1,000 sessions.
    fn default() -> Self {
        Self {
            check_interval_ms: 10_000,
            billing_window_secs: 300,
            warning_lead_secs: 300,
            lease_secs: 60,
            node: None,
            terminal_grace_secs: 60,
            billing_batch: 1000,
        }
    }
}

/// `n` units of `unit` as a duration, saturating (validated settings never come near).
fn duration(n: u64, unit: chrono::Duration) -> chrono::Duration {
    i32::try_from(n).map_or(chrono::Duration::MAX, |n| unit * n)
}

impl SessionSettings {
    /// [`Self::check_interval_ms`] as a duration.
    pub fn check_interval(&self) -> chrono::Duration {
        duration(self.check_interval_ms, chrono::Duration::milliseconds(1))
    }

    /// [`Self::billing_window_secs`] as a duration.
    pub fn billing_window(&self) -> chrono::Duration {
        duration(self.billing_window_secs, chrono::Duration::seconds(1))
    }

    /// [`Self::warning_lead_secs`] as a duration.
    pub fn warning_lead(&self) -> chrono::Duration {
        duration(self.warning_lead_secs, chrono::Duration::seconds(1))
    }

    /// [`Self::lease_secs`] as a duration.
    pub fn lease(&self) -> chrono::Duration {
        duration(self.lease_secs, chrono::Duration::seconds(1))
    }

    fn validate(&self) -> Result<()> {
        if self.check_interval_ms < 10 {
            return Err(Error::configuration(
                "sessions.check_interval_ms must be at least 10",
            ));
        }
        if self.billing_window_secs.saturating_mul(1000) <= self.check_interval_ms {
            return Err(Error::configuration(
                "sessions.billing_window_secs must be longer than sessions.check_interval_ms",
            ));
        }
        if !(1..=10_000).contains(&self.billing_batch) {
            return Err(Error::configuration(
                "sessions.billing_batch must be between 1 and 10000",
            ));
        }
        if self.lease_secs == 0 {
            return Err(Error::configuration(
                "sessions.lease_secs must be at least 1",
            ));
        }
        if let Some(node) = &self.node
            && (node.is_empty() || node.len() > 128)
        {
            return Err(Error::configuration(
                "sessions.node must be 1-128 characters",
            ));
        }
        Ok(())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            default_limits: SessionLimits::default(),
            max_limits: SessionLimits {
                max_duration_secs: 7 * 24 * 3600,
                max_cost_micros: 10_000 * crate::model::MICROS_PER_CREDIT,
                idle_timeout_secs: 7 * 24 * 3600,
            },
            key_touch_interval_secs: 60,
            pricing: crate::model::PriceBook::default(),
            sessions: SessionSettings::default(),
            storage: StorageSettings::default(),
        }
    }
}

impl EngineConfig {
    /// Checks the settings against each other, naming the first bad key.
    pub fn validate(&self) -> Result<()> {
        crate::validation::validate(&self.default_limits)
            .map_err(|e| Error::configuration(format!("default_limits: {}", e.message())))?;
        crate::validation::validate(&self.max_limits)
            .map_err(|e| Error::configuration(format!("max_limits: {}", e.message())))?;
        self.default_limits
            .check_within(&self.max_limits, "default_limits")
            .map_err(|e| Error::configuration(format!("{} (max_limits)", e.message())))?;
        self.pricing.validate()?;
        self.sessions.validate()?;
        self.storage.validate()?;
        if self.key_touch_interval_secs == 0 {
            return Err(Error::configuration(
                "key_touch_interval_secs must be at least 1",
            ));
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    pub(crate) db: Arc<dyn Database>,
    pub(crate) storage: Option<Arc<dyn StorageProvider>>,
    pub(crate) compute: Option<Arc<dyn ComputeProvider>>,
    pub(crate) optimizer: Option<Arc<dyn Optimizer>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    /// This server's node name (see [`SessionSettings::node`]).
    pub(crate) node: String,
    /// What this process holds in memory for the services and the monitor.
    pub(crate) shared: crate::shared::Shared,
}

/// The OnMemOS engine: cheap to clone, shared by the server, the monitor and in-process callers.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("database", &self.inner.db.capabilities().name)
            .field(
                "storage",
                &self.inner.storage.as_ref().map(|s| s.capabilities().name),
            )
            .field(
                "compute",
                &self.inner.compute.as_ref().map(|c| c.capabilities().name),
            )
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Engine {
    /// Starts building an engine over `database`.
    pub fn builder(database: Arc<dyn Database>) -> EngineBuilder {
        EngineBuilder {
            db: database,
            storage: None,
            compute: None,
            optimizer: None,
            clock: Arc::new(SystemClock),
            config: EngineConfig::default(),
        }
    }

    /// This server's node name among replicas.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The database port.
    pub fn database(&self) -> &Arc<dyn Database> {
        &self.inner.db
    }

    /// The storage port, when one is configured.
    pub fn storage_provider(&self) -> Option<&Arc<dyn StorageProvider>> {
        self.inner.storage.as_ref()
    }

    /// The compute port, when one is configured.
    pub fn compute(&self) -> Option<&Arc<dyn ComputeProvider>> {
        self.inner.compute.as_ref()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The optimizer port, when one is configured.
    pub fn optimizer_provider(&self) -> Option<&Arc<dyn Optimizer>> {
        self.inner.optimizer.as_ref()
    }

    /// What this process holds in memory for the services and the monitor.
    pub(crate) fn shared(&self) -> &crate::shared::Shared {
        &self.inner.shared
    }

    /// `Ok` when every dependency answers (for readiness probes).
    pub async fn ready(&self) -> Result<()> {
        self.inner.db.ping().await
    }
}

/// Builds an [`Engine`]: the database is required, everything else has a default.
pub struct EngineBuilder {
    db: Arc<dyn Database>,
    storage: Option<Arc<dyn StorageProvider>>,
    compute: Option<Arc<dyn ComputeProvider>>,
    optimizer: Option<Arc<dyn Optimizer>>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The object store for workspace storage.
    pub fn with_storage(mut self, storage: Arc<dyn StorageProvider>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Where sessions run.
    pub fn with_compute(mut self, compute: Arc<dyn ComputeProvider>) -> Self {
        self.compute = Some(compute);
        self
    }

    /// The cost optimizer behind `POST /v1/optimizer/recommendations`.
    pub fn with_optimizer(mut self, optimizer: Arc<dyn Optimizer>) -> Self {
        self.optimizer = Some(optimizer);
        self
    }

    /// The clock (tests use a [`ManualClock`](crate::clock::ManualClock)).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The settings.
    pub fn with_config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Validates the settings, seeds the built-in templates and returns the engine.
    pub async fn build(self) -> Result<Engine> {
        self.config.validate()?;
        let node = self.config.sessions.node.clone().unwrap_or_else(host_name);
        let parts_in_memory = self.config.storage.parts_in_memory;
        let engine = Engine {
            inner: Arc::new(Inner {
                db: self.db,
                storage: self.storage,
                compute: self.compute,
                optimizer: self.optimizer,
                clock: self.clock,
                config: self.config,
                node,
                shared: crate::shared::Shared::new(parts_in_memory),
            }),
        };
        engine.templates().seed_builtins().await?;
        if let (Some(compute), Some(storage)) = (engine.compute(), engine.storage_provider())
            && !compute.capabilities().node_local
            && storage.local_dir("").is_some()
        {
            tracing::warn!(
                compute = compute.capabilities().name,
                "workspace files are on this machine's disk but sessions run elsewhere: they see them through a path on their node, which holds only on a single-node cluster whose node is this machine; use a cloud object store"
            );
        }
        Ok(engine)
    }
}

/// This machine's host name (`localhost` when it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
