//! `ComputeProvider` implementations: `LocalCompute`, sessions as process trees under a PTY
//! on this machine (feature `local-compute`, the embedded default).

#[cfg(feature = "local-compute")]
mod cgroup;
#[cfg(feature = "local-compute")]
mod local;
#[cfg(feature = "local-compute")]
mod procfs;

#[cfg(feature = "local-compute")]
pub use local::{DEFAULT_MAX_PROCESSES, LocalCompute};

use std::path::Path;
use std::sync::Arc;

use onmemos_core::ports::ComputeProvider;
use onmemos_core::{Error, Result};

/// Opens the compute named by `url`, keeping its files under `data_dir`:
/// - `local://` — [`LocalCompute`], always in the bubblewrap sandbox (sessions are refused
///   where it cannot run);
/// - `local://?sandbox=off` — [`LocalCompute`] without the sandbox, the operator's explicit
///   choice for hosts where bubblewrap cannot create namespaces.
///
/// An unknown scheme, or one whose feature is off, is a configuration error naming it.
pub fn connect(url: &str, data_dir: &Path) -> Result<Arc<dyn ComputeProvider>> {
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
        "kube" => Err(Error::configuration(format!(
            "compute_url {url:?}: the Kubernetes backend is not part of this build yet"
        ))),
        _ => Err(Error::configuration(format!(
            "unknown compute URL scheme `{scheme}` in {url:?}: expected local://"
        ))),
    }
}
