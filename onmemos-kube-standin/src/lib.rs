//! # onmemos-kube-standin
//!
//! A Kubernetes API server stand-in on a loopback socket, for testing code that talks to a
//! cluster where no cluster can run: kube-rs clients, controllers and `kubectl` itself.
//! It keeps objects in memory and follows the apiserver's protocol — paths, discovery,
//! `v1 Status` errors with their codes and reasons, resourceVersions and conflicts, label and
//! field selectors, pagination, watches with bookmarks and `410 Expired`, the patch types and
//! dry runs. `docs/testing-kubernetes.md` says what it implements and what it does not.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let standin = onmemos_kube_standin::StandIn::start().await?;
//! println!("kubectl --kubeconfig {} get ns", standin.kubeconfig().display());
//! // With the `kube` feature: let client = standin.client()?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod api;
mod audit;
mod conditions;
mod controllers;
mod defaults;
mod discovery;
mod events;
mod eviction;
mod exec;
mod faults;
mod fields;
mod interruption;
mod kubelet;
mod metrics;
mod names;
mod nodes;
mod openapi;
mod patch;
mod protobuf;
mod quantity;
mod resources;
mod scale;
mod scheduler;
mod selectors;
mod status;
mod store;
mod taints;
mod volumes;
mod watch;
mod workloads;
mod yaml;

pub use audit::Access;
pub use faults::{Fault, FaultKind};
pub use interruption::SpotProvider;
pub use nodes::{NodeSpec, Taint};
pub use resources::{RESOURCES, ResourceType};
pub use status::{ApiError, FieldError};

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct StandInState {
    pub(crate) store: store::Store,
    /// Bumped to end every open watch (as an apiserver restart or a load balancer would).
    pub(crate) watch_epoch: tokio::sync::watch::Sender<u64>,
    /// The processes of the pods on the nodes.
    pub(crate) kubelet: kubelet::Kubelet,
    /// Injected faults still to happen.
    pub(crate) faults: faults::Faults,
    /// The accesses clients made.
    pub(crate) audit: audit::Audit,
}

/// A running stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct StandIn {
    url: String,
    addr: SocketAddr,
    state: Arc<StandInState>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
    controllers: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
        self.controllers.abort();
    }
}

/// The router of a stand-in over `state`.
fn router(state: Arc<StandInState>) -> axum::Router {
    axum::Router::new().fallback(api::handle).with_state(state)
}

/// Whether the real `kubectl` can run here, for tests that drive it. Under `CI` it must:
/// its absence panics there; elsewhere it is said and the caller skips.
pub fn kubectl_on_path() -> bool {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl must be on the PATH in CI: the kubectl tests cannot be skipped there"
        );
        eprintln!("SKIPPED: no kubectl on the PATH");
    }
    found
}

/// A kubeconfig whose one context points at `url` in namespace `default`.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: onmemos-standin\n  cluster:\n    server: {url}\ncontexts:\n- name: onmemos-standin\n  context:\n    cluster: onmemos-standin\n    user: onmemos-standin\n    namespace: default\ncurrent-context: onmemos-standin\nusers:\n- name: onmemos-standin\n  user: {{}}\n"
    )
}

impl StandIn {
    /// Starts a stand-in on a free loopback port, with its kubeconfig in a temporary
    /// directory.
    pub async fn start() -> std::io::Result<Self> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a stand-in listening on `addr`.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let state = Arc::new(StandInState {
            store: store::Store::new(),
            watch_epoch: tokio::sync::watch::Sender::new(0),
            kubelet: kubelet::Kubelet::new()?,
            faults: faults::Faults::default(),
            audit: audit::Audit::default(),
        });
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url))?;
        let controllers = controllers::spawn(&state);
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the stand-in's server stopped");
            }
        });
        Ok(Self {
            url,
            addr,
            state,
            kubeconfig,
            _dir: dir,
            server,
            controllers,
        })
    }

    /// The directory a CSI volume of `driver` shows for `bucket`: a pod mounting the bucket
    /// with a prefix sees `<this>/<prefix>` (see the kubelet's volumes).
    pub fn csi_bucket_dir(&self, driver: &str, bucket: &str) -> PathBuf {
        self.state.kubelet.csi_root().join(driver).join(bucket)
    }

    /// Its URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig file pointing at it (for `kubectl --kubeconfig` or `KUBECONFIG`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A handle to script the cluster.
    pub fn cluster(&self) -> Cluster {
        Cluster {
            state: self.state.clone(),
        }
    }

    /// A `kube::Client` of the stand-in (default namespace `default`).
    #[cfg(feature = "kube")]
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        let url = self
            .url
            .parse()
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        kube::Client::try_from(kube::Config::new(url))
    }
}

/// Scripts the cluster behind a stand-in.
#[derive(Debug, Clone)]
pub struct Cluster {
    state: Arc<StandInState>,
}

impl Cluster {
    pub(crate) fn from_state(state: Arc<StandInState>) -> Self {
        Self { state }
    }

    /// Interrupts spot node `node` as `provider` does (see [`SpotProvider`]); the node is
    /// gone `grace` later.
    pub fn interrupt_spot(
        &self,
        node: &str,
        provider: SpotProvider,
        grace: std::time::Duration,
    ) -> Result<(), ApiError> {
        interruption::interrupt(&self.state, node, provider, grace)
    }

    /// The cluster's current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.store.resource_version()
    }

    /// Ends every open watch, as an apiserver restart does: clients watch again from the
    /// last version they saw.
    pub fn end_watches(&self) {
        self.state.watch_epoch.send_modify(|e| *e += 1);
    }

    /// Adds a node (ready and schedulable) with its kubelet.
    pub fn add_node(&self, node: &NodeSpec) -> Result<(), ApiError> {
        let nodes = resources::find("", "v1", "nodes")
            .ok_or_else(|| ApiError::internal("no nodes resource"))?;
        self.state
            .store
            .create(nodes, "", node.to_object(), false)
            .map(|_| ())
    }

    /// Removes a node at once: its pods' processes are killed and the pods go with it.
    pub fn remove_node(&self, name: &str) -> Result<(), ApiError> {
        let (Some(nodes), Some(pods)) = (
            resources::find("", "v1", "nodes"),
            resources::find("", "v1", "pods"),
        ) else {
            return Ok(());
        };
        if !self.state.store.remove(nodes, "", name) {
            return Err(ApiError::not_found(nodes, name));
        }
        let filter = store::Filter {
            fields: selectors::FieldSelector::parse(&format!("spec.nodeName={name}"))
                .map_err(ApiError::bad_request)?,
            ..store::Filter::default()
        };
        let (on_node, _) = self.state.store.list(pods, &filter);
        for pod in on_node {
            let ns = pod
                .pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            self.state.store.remove(pods, ns, pod_name);
        }
        Ok(())
    }

    /// The accesses (verb, group, resource) clients made so far, as RBAC rules name them.
    pub fn accesses(&self) -> Vec<Access> {
        self.state.audit.seen()
    }

    /// Injects a fault: the next matching requests fail or stall.
    pub fn inject(&self, fault: Fault) {
        self.state.faults.add(fault);
    }

    /// Makes `image` fail to pull (`ErrImagePull`, then `ImagePullBackOff`).
    pub fn refuse_image(&self, image: &str) {
        self.state.kubelet.refuse_image(image);
    }

    /// Kills a container's processes with SIGKILL, as an OOM kill would; whether it ran.
    pub fn kill_container(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.state.kubelet.kill_container(namespace, pod, container)
    }

    /// Forgets every change so far, as an etcd compaction does: a watch or a `continue`
    /// token from an older version then gets `410 Expired`.
    pub fn compact(&self) {
        self.state.store.compact();
    }
}
