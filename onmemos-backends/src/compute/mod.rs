//! `ComputeProvider` implementations: `LocalCompute`, sessions as process trees under a PTY
//! on this machine (feature `local-compute`, the embedded default), and `KubernetesCompute`,
//! sessions as pods on a cluster (feature `kubernetes`).

#[cfg(feature = "local-compute")]
mod cgroup;
#[cfg(feature = "local-compute")]
mod local;
#[cfg(feature = "local-compute")]
mod procfs;

#[cfg(feature = "kubernetes")]
mod kube;
#[cfg(feature = "local-compute")]
pub use local::{DEFAULT_MAX_PROCESSES, LocalCompute};

#[cfg(feature = "kubernetes")]
pub use kube::{
    CapacityLabels, ClusterSource, Flavour, KubeOptions, KubernetesCompute, RunAs, manifests,
};

use std::path::Path;
use std::sync::Arc;

use onmemos_core::ports::ComputeProvider;
use onmemos_core::{Error, Result};

/// A stream over an mpsc receiver.
#[cfg(any(feature = "local-compute", feature = "kubernetes"))]
pub(crate) struct ReceiverStream<T>(pub(crate) tokio::sync::mpsc::Receiver<T>);

#[cfg(any(feature = "local-compute", feature = "kubernetes"))]
impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// Opens the compute named by `url`, keeping its files under `data_dir`:
/// - `local://` — [`LocalCompute`], always in the bubblewrap sandbox (sessions are refused
///   where it cannot run);
/// - `local://?sandbox=off` — [`LocalCompute`] without the sandbox, the operator's explicit
///   choice for hosts where bubblewrap cannot create namespaces.
///
/// - `kube://`, `kube://CONTEXT`, `kube://in-cluster` — [`KubernetesCompute`] (feature
///   `kubernetes`), with the options of [`KubeOptions`].
///
/// An unknown scheme, or one whose feature is off, is a configuration error naming it.
pub async fn connect(url: &str, data_dir: &Path) -> Result<Arc<dyn ComputeProvider>> {
    let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
    match scheme {
        "local" => {
            #[cfg(feature = "local-compute")]
            {
                let root = data_dir.join("compute");
                match rest.trim_start_matches('/') {
                    "" => Ok(Arc::new(LocalCompute::new(root))),
                    "?sandbox=off" => Ok(Arc::new(LocalCompute::unsandboxed(root))),
                    other => Err(Error::configuration(format!(
                        "compute_url {url:?}: unknown option {other:?}; expected local:// or local://?sandbox=off"
                    ))),
                }
            }
            #[cfg(not(feature = "local-compute"))]
            {
                let _ = (rest, data_dir);
                Err(crate::feature_off("local-compute", url))
            }
        }
        "kube" => {
            #[cfg(feature = "kubernetes")]
            {
                Ok(Arc::new(KubernetesCompute::connect(url).await?))
            }
            #[cfg(not(feature = "kubernetes"))]
            {
                Err(crate::feature_off("kubernetes", url))
            }
        }
        _ => Err(Error::configuration(format!(
            "unknown compute URL scheme `{scheme}` in {url:?}: expected local:// or kube://"
        ))),
    }
}
