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
mod controllers;
mod defaults;
mod discovery;
mod names;
mod patch;
mod resources;
mod scale;
mod selectors;
mod status;
mod store;
mod watch;

pub use resources::{RESOURCES, ResourceType};
pub use status::{ApiError, FieldError};

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct StandInState {
    pub(crate) store: store::Store,
    /// Bumped to end every open watch (as an apiserver restart or a load balancer would).
    pub(crate) watch_epoch: tokio::sync::watch::Sender<u64>,
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
    /// The cluster's current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.store.resource_version()
    }

    /// Ends every open watch, as an apiserver restart does: clients watch again from the
    /// last version they saw.
    pub fn end_watches(&self) {
        self.state.watch_epoch.send_modify(|e| *e += 1);
    }

    /// Forgets every change so far, as an etcd compaction does: a watch or a `continue`
    /// token from an older version then gets `410 Expired`.
    pub fn compact(&self) {
        self.state.store.compact();
    }
}
