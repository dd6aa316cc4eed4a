//! The `ComputeProvider` port: where sessions run.
//!
//! Implementations: `LocalCompute` (a process tree under a PTY per session, on this machine, in
//! bubblewrap unless the operator opted out) and `KubernetesCompute` (a namespace per workspace,
//! a pod per session, on GKE, EKS or any cluster). Both pass the conformance suite
//! (`onmemos_core::testing::compute`, with the feature `testing`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;

pub use crate::api::{LimitEnforcement, SandboxState};
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::id::{SessionId, TemplateId, UserId, WorkspaceId};
use crate::model::{Placement, Resources};

/// What a compute implementation supports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComputeCapabilities {
    /// The implementation's name (`local`, `kubernetes`).
    pub name: &'static str,
    /// Whether sessions are isolated from each other and the host (bubblewrap, pods).
    pub sandboxed: bool,
    /// The state of the sandbox ([`SandboxState::Enforced`] exactly when `sandboxed`).
    pub sandbox: SandboxState,
    /// How resource limits are enforced.
    pub limits: LimitEnforcement,
    /// Whether GPUs can be attached.
    pub gpu: bool,
    /// Whether spot capacity can be chosen.
    pub spot: bool,
    /// Whether workspace storage is mounted into sessions.
    pub storage_mounts: bool,
    /// Whether a session can only be reached (exec, terminal, stop) from the server node that
    /// started it, as with processes on that machine; other nodes then point callers there.
    pub node_local: bool,
}

impl ComputeCapabilities {
    /// A compute named `name` that supports nothing optional (no sandbox, no limits, no GPU,
    /// no spot, no mounts, reachable from any node); say what it does with the `with_*`
    /// methods, by name (`ComputeCapabilities::new("k8s").with_spot(true)`).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            sandboxed: false,
            sandbox: SandboxState::Off,
            limits: LimitEnforcement::None,
            gpu: false,
            spot: false,
            storage_mounts: false,
            node_local: false,
        }
    }

    /// The same, saying whether GPUs can be attached.
    pub fn with_gpu(mut self, gpu: bool) -> Self {
        self.gpu = gpu;
        self
    }

    /// The same, saying whether spot capacity can be chosen.
    pub fn with_spot(mut self, spot: bool) -> Self {
        self.spot = spot;
        self
    }

    /// The same, saying whether workspace storage is mounted into sessions.
    pub fn with_storage_mounts(mut self, storage_mounts: bool) -> Self {
        self.storage_mounts = storage_mounts;
        self
    }

    /// The same, with this sandbox state (`sandboxed` follows it).
    pub fn with_sandbox(mut self, sandbox: SandboxState) -> Self {
        self.sandbox = sandbox;
        self.sandboxed = sandbox == SandboxState::Enforced;
        self
    }

    /// The same, with limits enforced this way.
    pub fn with_limits(mut self, limits: LimitEnforcement) -> Self {
        self.limits = limits;
        self
    }

    /// The same, saying whether sessions are reachable only from the node that started them.
    pub fn with_node_local(mut self, node_local: bool) -> Self {
        self.node_local = node_local;
        self
    }
}

/// The environment of a workspace, provisioned before its first session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSpec {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// Its owner.
    pub owner: UserId,
    /// Its DNS-label name.
    pub name: String,
}

/// Where a workspace's stored files come from, for a compute to show them in its sessions at
/// `/workspace/files`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilesMount {
    /// A directory on the server's machine (local storage).
    Dir(std::path::PathBuf),
    /// A prefix of a bucket in an object store.
    Bucket(BucketMount),
}

/// A prefix of a bucket, as a CSI driver mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketMount {
    /// Which store.
    pub store: BucketStore,
    /// The bucket (the container, on Azure).
    pub bucket: String,
    /// The workspace's prefix in it, without a leading or trailing `/` (`workspaces/ws_…`).
    pub prefix: String,
}

/// The object store a bucket lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BucketStore {
    /// Amazon S3 (or an S3-compatible store).
    S3 {
        /// Its region, when configured.
        region: Option<String>,
    },
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure {
        /// The storage account.
        account: String,
    },
}

/// What to start for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The session.
    pub session: SessionId,
    /// The workspace it runs in.
    pub workspace: WorkspaceId,
    /// The template it was made from, when there is one.
    pub template: Option<TemplateId>,
    /// The image (ignored by local compute).
    pub image: String,
    /// Resource requests and limits.
    pub resources: Resources,
    /// Environment variables (template, then workspace, then request).
    pub env: BTreeMap<String, String>,
    /// Spot or on-demand.
    pub placement: Placement,
    /// Where the workspace's stored files come from, shown in the session as
    /// `/workspace/files`; `None` shows none.
    pub files: Option<FilesMount>,
    /// The longest the session may run: a compute may stop it itself past this, as a backstop
    /// to the monitor that stops it at its limit.
    pub max_duration: Option<Duration>,
}

/// A command to run in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Bytes written to the command's stdin, then closed.
    pub stdin: Option<Bytes>,
    /// Kill the command after this long.
    pub timeout: Duration,
}

/// Output of a running command, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Bytes on stdout.
    Stdout(Bytes),
    /// Bytes on stderr.
    Stderr(Bytes),
    /// The command ended with this exit code (`None` when killed by a signal or timeout).
    Exit(Option<i32>),
}

/// A stream of [`ExecEvent`]s ending with [`ExecEvent::Exit`].
pub type ExecStream = Pin<Box<dyn Stream<Item = Result<ExecEvent>> + Send + 'static>>;

/// Terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtySize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// A connection to a session's terminal. Methods take `&self`, so one task can read while
/// another writes.
#[async_trait]
pub trait PtyConnection: Send + Sync + Debug {
    /// Writes keyboard input.
    async fn write(&self, bytes: &[u8]) -> Result<()>;
    /// Reads terminal output; `None` when the terminal closed. Only one read at a time makes
    /// sense: concurrent readers share the output between them.
    async fn read(&self) -> Result<Option<Bytes>>;
    /// Changes the terminal size.
    async fn resize(&self, size: PtySize) -> Result<()>;
}

/// The state of a session's compute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComputeStatus {
    /// Starting up.
    Starting,
    /// Running.
    Running,
    /// Exited with this code.
    Exited(Option<i32>),
    /// Its capacity was taken back — evicted, its node terminated, or deleted by someone else —
    /// at `at`; the session is charged up to then.
    Preempted {
        /// When it ended.
        at: DateTime<Utc>,
        /// What happened, for the session's owner.
        reason: String,
    },
    /// It could not start or run (an image that cannot be pulled, no node that fits).
    Failed {
        /// Why, for the session's owner.
        reason: String,
    },
    /// Not known to the provider (never started, or gone).
    Gone,
}

/// Something a compute learned about a running session on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComputeNotice {
    /// Its capacity is being taken back: the session will end soon.
    Interruption {
        /// The session.
        session: SessionId,
        /// What the provider said.
        message: String,
    },
}

/// Resources a session uses now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    /// CPU time used since start, in milliseconds.
    pub cpu_time_ms: u64,
    /// Resident memory in bytes.
    pub memory_bytes: u64,
    /// Number of processes.
    pub processes: u32,
}

/// Where sessions run.
#[async_trait]
pub trait ComputeProvider: Send + Sync + Debug + 'static {
    /// What this implementation supports.
    fn capabilities(&self) -> ComputeCapabilities;
    /// Prepares a workspace's environment (directory, namespace, service account).
    async fn provision_workspace(&self, spec: &WorkspaceSpec) -> Result<()>;
    /// Removes a workspace's environment.
    async fn teardown_workspace(&self, workspace: WorkspaceId) -> Result<()>;
    /// Starts a session.
    async fn start_session(&self, spec: &SessionSpec) -> Result<()>;
    /// Stops a session and everything it started; stopping a gone session is not an error.
    async fn stop_session(&self, session: SessionId) -> Result<()>;
    /// Runs a command in a session.
    async fn exec(&self, session: SessionId, request: ExecRequest) -> Result<ExecStream>;
    /// Attaches to the session's terminal.
    async fn attach_pty(&self, session: SessionId, size: PtySize)
    -> Result<Box<dyn PtyConnection>>;
    /// The state of a session's compute.
    async fn status(&self, session: SessionId) -> Result<ComputeStatus>;
    /// What a session uses now.
    async fn usage(&self, session: SessionId) -> Result<ResourceUsage>;
    /// The sessions this provider runs (to reconcile after a restart). A provider that learns
    /// of its compute through a watch lists a session another provider just started once its
    /// watch has seen it; a provider made after the session started lists it at once.
    async fn running_sessions(&self) -> Result<Vec<SessionId>>;
    /// What the compute learned since the last call (each notice once per provider).
    fn take_notices(&self) -> Vec<ComputeNotice> {
        Vec::new()
    }
}
