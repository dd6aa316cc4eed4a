//! `KubernetesCompute`: sessions as pods on GKE, EKS or any cluster (feature `kubernetes`).
//!
//! A workspace is a namespace — its service account (no token unless a cloud identity is
//! bound), quota, limit range and a network policy that lets in only its own pods; a session
//! is a pod whose one container runs the session's shell under a terminal. Exec and terminals
//! go through the pod `exec` and `attach` WebSockets. What the pods do is learned from one
//! watch per server ([`pods`]), never by polling: a pod that goes without OnMemOS deleting it
//! (evicted, its node gone, deleted by hand) ends its session as preempted, at the moment it
//! ended. Any replica reaches any session: nothing about a session lives in the server.
//!
//! Calls to the API server are retried within bounds on 429, 5xx and lost connections
//! ([`retry`]); a call that stalls times out.

mod exec;
pub mod manifests;
mod options;
mod pods;
mod retry;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, PostParams};
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::ports::compute::{
    BucketStore, ComputeCapabilities, ComputeNotice, ComputeProvider, ComputeStatus, ExecRequest,
    ExecStream, FilesMount, LimitEnforcement, PtyConnection, PtySize, ResourceUsage, SandboxState,
    SessionSpec, WorkspaceSpec,
};
use onmemos_core::{Error, Result};

pub use options::{CapacityLabels, ClusterSource, Flavour, KubeOptions, RunAs};
use pods::PodCache;
use retry::{kube_error, retried};

/// How long a deleted pod or namespace may take to go before the call gives up.
const GONE_PATIENCE: Duration = Duration::from_secs(120);

/// Sessions as pods on a Kubernetes cluster.
pub struct KubernetesCompute {
    /// For request–response calls: they time out when they stall.
    client: kube::Client,
    /// For watches, exec and attach: long-lived streams.
    streams: kube::Client,
    options: KubeOptions,
    pods: Arc<PodCache>,
    watch: tokio::task::JoinHandle<()>,
    /// Namespaces provisioned by this process (provisioning is idempotent; this saves calls).
    provisioned: Mutex<HashSet<WorkspaceId>>,
}

impl std::fmt::Debug for KubernetesCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesCompute")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for KubernetesCompute {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl KubernetesCompute {
    /// Connects as a `kube://` URL says ([`KubeOptions`]) and starts watching the session pods.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = KubeOptions::parse(url)?;
        let config = match &options.source {
            ClusterSource::InCluster => kube::Config::incluster().map_err(|e| {
                Error::configuration(format!(
                    "compute_url {url:?}: not running in a cluster ({e})"
                ))
            })?,
            source => {
                let context = match source {
                    ClusterSource::Context(name) => Some(name.clone()),
                    _ => None,
                };
                kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                    context,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    Error::configuration(format!(
                        "compute_url {url:?}: cannot read the kubeconfig ({e})"
                    ))
                })?
            }
        };
        Self::with_config(config, options)
    }

    /// A compute over an already made client configuration (a test's cluster, say).
    pub fn with_config(mut config: kube::Config, options: KubeOptions) -> Result<Self> {
        // Retries are ours, bounded ([`retry`]); the client's own would stack on them.
        config.default_retry = false;
        let streams = kube::Client::try_from(config.clone())
            .map_err(|e| Error::configuration(format!("Kubernetes client: {e}")))?;
        config.read_timeout = Some(options.call_timeout);
        config.connect_timeout = Some(options.call_timeout);
        let client = kube::Client::try_from(config)
            .map_err(|e| Error::configuration(format!("Kubernetes client: {e}")))?;
        let pods = PodCache::new(manifests::namespaces_start(&options));
        let watch = pods.spawn_watch(streams.clone());
        Ok(Self {
            client,
            streams,
            options,
            pods,
            watch,
            provisioned: Mutex::default(),
        })
    }

    /// What the URL said.
    pub fn options(&self) -> &KubeOptions {
        &self.options
    }

    /// The namespace of a workspace.
    pub fn namespace_of(&self, workspace: WorkspaceId) -> String {
        manifests::namespace_name(&self.options, workspace)
    }

    /// Waits until the pod watch has listed the cluster once (at most `patience`).
    async fn synced(&self, patience: Duration) -> Result<()> {
        let mut changes = self.pods.subscribe();
        let deadline = tokio::time::Instant::now() + patience;
        while !self.pods.synced() {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Err(Error::unavailable(
                    "the Kubernetes API server did not list the session pods in time",
                ));
            }
        }
        Ok(())
    }

    /// The namespace and name of a session's pod, from the watch.
    fn located(&self, session: SessionId) -> Result<(String, String)> {
        let pod = self
            .pods
            .pod(session)
            .ok_or_else(|| Error::not_found(format!("no running session {session}")))?;
        Ok((
            pod.metadata.namespace.clone().unwrap_or_default(),
            manifests::pod_name(session),
        ))
    }

    /// Creates `object` unless it exists.
    async fn ensure<K>(&self, api: &Api<K>, object: &K) -> Result<()>
    where
        K: kube::Resource
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let made = retried(|| async {
            match api.create(&PostParams::default(), object).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await;
        made.map_err(|e| kube_error(&format!("create {}", K::kind(&Default::default())), e))
    }

    /// Deletes `name` unless it is already gone; whether there was one to delete.
    async fn delete<K>(
        &self,
        api: &Api<K>,
        name: &str,
        params: &DeleteParams,
        what: &str,
    ) -> Result<bool>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        retried(|| async {
            match api.delete(name, params).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| kube_error(&format!("delete {what}"), e))
    }

    /// Creates the static volume and claim an S3 workspace's files are mounted from.
    async fn ensure_files_volume(&self, spec: &SessionSpec) -> Result<()> {
        if let Some(FilesMount::Bucket(mount)) = &spec.files
            && matches!(mount.store, BucketStore::S3 { .. })
        {
            let namespace = self.namespace_of(spec.workspace);
            self.ensure(
                &Api::<PersistentVolume>::all(self.client.clone()),
                &manifests::files_volume(&self.options, spec.workspace, mount),
            )
            .await?;
            self.ensure(
                &Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &namespace),
                &manifests::files_claim(&self.options, spec.workspace),
            )
            .await?;
        }
        Ok(())
    }

    /// Waits until a just-created pod runs; fails on an image that cannot be pulled, a
    /// container that cannot start, or no node for it past the start timeout.
    async fn until_running(&self, session: SessionId) -> Result<()> {
        let mut changes = self.pods.subscribe();
        let deadline = tokio::time::Instant::now() + self.options.start_timeout;
        loop {
            let seen = self.pods.pod(session);
            match self.pods.status(session) {
                ComputeStatus::Running => return Ok(()),
                ComputeStatus::Failed { reason } => {
                    return Err(Error::invalid(
                        "template",
                        format!("the session cannot start: {reason}"),
                    ));
                }
                ComputeStatus::Exited(code) => {
                    return Err(Error::unavailable(format!(
                        "the session's shell exited as it started (code {code:?})"
                    )));
                }
                ComputeStatus::Preempted { reason, .. } => {
                    return Err(Error::unavailable(format!(
                        "the session's pod went as it started: {reason}"
                    )));
                }
                _ => {}
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let why = seen
                    .as_deref()
                    .and_then(pods::unschedulable)
                    .map(|m| format!("no node can run it: {m}"))
                    .unwrap_or_else(|| "its pod did not start".to_owned());
                return Err(Error::unavailable(format!(
                    "the session did not start within {} s: {why}",
                    self.options.start_timeout.as_secs()
                )));
            }
        }
    }

    /// The namespace of a session's pod, asked of the API server (by its label, across the
    /// namespaces), for a pod the watch has not seen.
    async fn find_pod(&self, session: SessionId) -> Result<Option<Pod>> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let selector = kube::api::ListParams::default()
            .labels(&format!("{}={session}", manifests::SESSION_LABEL));
        let found = retried(|| async { api.list(&selector).await })
            .await
            .map_err(|e| kube_error("find the session's pod", e))?;
        Ok(found
            .items
            .into_iter()
            .find(|pod| self.pods.ours(pod).is_some()))
    }

    /// Deletes a session's pod and waits until the watch saw it go (when it saw it at all).
    async fn delete_pod(&self, pod: &Pod, session: SessionId) -> Result<()> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let mut changes = self.pods.subscribe();
        // One second: an interactive shell ignores SIGTERM, and nothing in a session is worth
        // waiting for once its owner stopped it.
        let params = DeleteParams::default().grace_period(1);
        let deleted = self
            .delete(&api, &name, &params, "the session's pod")
            .await?;
        if !deleted {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + GONE_PATIENCE;
        while self.pods.pod(session).is_some() {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Err(Error::unavailable(format!(
                    "the pod of session {session} did not go within {} s",
                    GONE_PATIENCE.as_secs()
                )));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ComputeProvider for KubernetesCompute {
    fn capabilities(&self) -> ComputeCapabilities {
        ComputeCapabilities::new("kubernetes")
            .with_sandbox(SandboxState::Enforced)
            .with_limits(LimitEnforcement::Container)
            .with_gpu(true)
            .with_spot(true)
            .with_storage_mounts(true)
            .with_node_local(false)
    }

    async fn provision_workspace(&self, spec: &WorkspaceSpec) -> Result<()> {
        if self
            .provisioned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&spec.workspace)
        {
            return Ok(());
        }
        let o = &self.options;
        let namespace = self.namespace_of(spec.workspace);
        self.ensure(
            &Api::<Namespace>::all(self.client.clone()),
            &manifests::namespace(o, spec),
        )
        .await?;
        let c = || self.client.clone();
        let (sa_api, quota_api, limits_api, policy_api) = (
            Api::<ServiceAccount>::namespaced(c(), &namespace),
            Api::<ResourceQuota>::namespaced(c(), &namespace),
            Api::<LimitRange>::namespaced(c(), &namespace),
            Api::<NetworkPolicy>::namespaced(c(), &namespace),
        );
        let (sa, quota, limits, policy) = (
            manifests::service_account(o, spec),
            manifests::resource_quota(o, spec),
            manifests::limit_range(o, spec),
            manifests::network_policy(o, spec),
        );
        let (sa, quota, limits, policy) = tokio::join!(
            self.ensure(&sa_api, &sa),
            self.ensure(&quota_api, &quota),
            self.ensure(&limits_api, &limits),
            self.ensure(&policy_api, &policy),
        );
        sa.and(quota).and(limits).and(policy)?;
        self.provisioned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.workspace);
        Ok(())
    }

    async fn teardown_workspace(&self, workspace: WorkspaceId) -> Result<()> {
        self.provisioned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&workspace);
        let namespace = self.namespace_of(workspace);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let params = DeleteParams::default();
        let deleted = self
            .delete(&api, &namespace, &params, "the workspace's namespace")
            .await?;
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let volume = manifests::files_volume_name(&namespace);
        self.delete(&volumes, &volume, &params, "the workspace's files volume")
            .await?;
        if !deleted {
            return Ok(());
        }
        // The namespace goes once everything in it went (a rare wait: a workspace's deletion).
        let deadline = tokio::time::Instant::now() + GONE_PATIENCE;
        loop {
            match api.get_opt(&namespace).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(Some(_)) => {
                    return Err(Error::unavailable(format!(
                        "namespace {namespace} did not go within {} s",
                        GONE_PATIENCE.as_secs()
                    )));
                }
                Err(e) => return Err(kube_error("read the workspace's namespace", e)),
            }
        }
    }

    async fn start_session(&self, spec: &SessionSpec) -> Result<()> {
        self.synced(self.options.call_timeout).await?;
        if self.pods.pod(spec.session).is_some() {
            return Err(Error::conflict(format!(
                "session {} is already running",
                spec.session
            )));
        }
        self.ensure_files_volume(spec).await?;
        let namespace = self.namespace_of(spec.workspace);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let pod = manifests::pod(&self.options, spec);
        retried(|| async {
            match api.create(&PostParams::default(), &pod).await {
                Ok(_) => Ok(()),
                // A retry of a create that went through.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| {
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                // The namespace went (deleted by hand): provision it again next time.
                self.provisioned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&spec.workspace);
            }
            kube_error("create the session's pod", e)
        })?;
        self.until_running(spec.session).await
    }

    async fn stop_session(&self, session: SessionId) -> Result<()> {
        self.synced(self.options.call_timeout).await?;
        self.pods.stopping(session);
        let pod = match self.pods.pod(session) {
            Some(pod) => Some(pod),
            // Not seen by the watch (yet): a pod just created, whose start is being undone.
            None => self.find_pod(session).await?.map(Arc::new),
        };
        let deleted = match pod {
            Some(pod) => self.delete_pod(&pod, session).await,
            None => Ok(()),
        };
        self.pods.stopped(session);
        deleted
    }

    async fn exec(&self, session: SessionId, request: ExecRequest) -> Result<ExecStream> {
        self.synced(self.options.call_timeout).await?;
        let (namespace, name) = self.located(session)?;
        exec::exec(&self.streams, &namespace, &name, request).await
    }

    async fn attach_pty(
        &self,
        session: SessionId,
        size: PtySize,
    ) -> Result<Box<dyn PtyConnection>> {
        self.synced(self.options.call_timeout).await?;
        let (namespace, name) = self.located(session)?;
        exec::attach(&self.streams, &namespace, &name, size).await
    }

    async fn status(&self, session: SessionId) -> Result<ComputeStatus> {
        self.synced(self.options.call_timeout).await?;
        Ok(self.pods.status(session))
    }

    async fn usage(&self, session: SessionId) -> Result<ResourceUsage> {
        self.synced(self.options.call_timeout).await?;
        let (namespace, name) = self.located(session)?;
        let pod = self.pods.pod(session);
        let running = self.pods.status(session) == ComputeStatus::Running;
        let metrics = exec::pod_metrics(&self.client, &namespace, &name).await?;
        let started = pod
            .as_deref()
            .and_then(|p| p.status.as_ref()?.start_time.as_ref())
            .and_then(pods::utc);
        let alive_ms = started.map_or(0, |t| (chrono::Utc::now() - t).num_milliseconds().max(0));
        Ok(ResourceUsage {
            // metrics.k8s.io gives a rate: the CPU time is that rate over the pod's life.
            cpu_time_ms: u64::try_from(
                i128::from(metrics.cpu_millis) * i128::from(alive_ms) / 1000,
            )
            .unwrap_or(u64::MAX),
            memory_bytes: metrics.memory_bytes,
            // metrics.k8s.io does not count processes: the running shell is one.
            processes: u32::from(running),
        })
    }

    async fn running_sessions(&self) -> Result<Vec<SessionId>> {
        self.synced(self.options.call_timeout).await?;
        Ok(self.pods.running())
    }

    fn take_notices(&self) -> Vec<ComputeNotice> {
        self.pods.take_notices()
    }
}
