//! `KubernetesCompute` on the loopback Kubernetes stand-in (real processes behind real pods,
//! the real exec and attach WebSocket protocols), or on a real cluster when `KUBECONFIG` is
//! set: the `ComputeProvider` conformance suite for each flavour.
#![cfg(feature = "kubernetes")]

use std::sync::Arc;

use async_trait::async_trait;
use onmemos_backends::compute::{Flavour, KubeOptions, KubernetesCompute};
use onmemos_core::Result;
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::ports::ComputeProvider;
use onmemos_core::ports::compute::{
    ComputeCapabilities, ComputeNotice, ComputeStatus, ExecRequest, ExecStream, PtyConnection,
    PtySize, ResourceUsage, SessionSpec, WorkspaceSpec,
};
use onmemos_kube_standin::{NodeSpec, StandIn};

mod kube_common;

/// A compute and the stand-in it runs on (none on a real cluster), kept alive together.
#[derive(Debug)]
struct OnCluster {
    compute: KubernetesCompute,
    _standin: Option<Arc<StandIn>>,
}

/// The nodes a stand-in gets for `flavour`: one on-demand and one spot node, labelled as
/// that provider labels them.
fn nodes(flavour: Flavour) -> Vec<NodeSpec> {
    match flavour {
        Flavour::Gke => vec![
            NodeSpec::new("gke-on-demand"),
            NodeSpec::new("gke-spot").gke_spot(),
        ],
        Flavour::Eks => vec![
            NodeSpec::new("eks-on-demand").label("eks.amazonaws.com/capacityType", "ON_DEMAND"),
            NodeSpec::new("eks-spot").eks_spot(),
        ],
        Flavour::Plain => vec![NodeSpec::new("node-a")],
    }
}

/// `n` computes of `flavour` over one cluster (the same server, restarted `n - 1` times).
async fn computes(flavour: Flavour, n: usize) -> Vec<Arc<dyn ComputeProvider>> {
    let options = KubeOptions {
        flavour,
        // The stand-in runs pods as this machine's user.
        run_as: onmemos_backends::compute::RunAs::Image,
        ..KubeOptions::default()
    };
    let (config, standin) = match std::env::var_os("KUBECONFIG") {
        Some(_) => (
            kube::Config::infer()
                .await
                .unwrap_or_else(|e| panic!("KUBECONFIG is set but unreadable: {e}")),
            None,
        ),
        None => {
            let standin = StandIn::start()
                .await
                .unwrap_or_else(|e| panic!("stand-in: {e}"));
            for node in nodes(flavour) {
                standin
                    .cluster()
                    .add_node(&node)
                    .unwrap_or_else(|e| panic!("node: {e:?}"));
            }
            let url = standin.url().parse().unwrap_or_else(|e| panic!("{e}"));
            (kube::Config::new(url), Some(Arc::new(standin)))
        }
    };
    (0..n)
        .map(|_| {
            let compute = KubernetesCompute::with_config(config.clone(), options.clone())
                .unwrap_or_else(|e| panic!("compute: {e}"));
            Arc::new(OnCluster {
                compute,
                _standin: standin.clone(),
            }) as Arc<dyn ComputeProvider>
        })
        .collect()
}

#[async_trait]
impl ComputeProvider for OnCluster {
    fn capabilities(&self) -> ComputeCapabilities {
        self.compute.capabilities()
    }
    async fn provision_workspace(&self, spec: &WorkspaceSpec) -> Result<()> {
        self.compute.provision_workspace(spec).await
    }
    async fn teardown_workspace(&self, workspace: WorkspaceId) -> Result<()> {
        self.compute.teardown_workspace(workspace).await
    }
    async fn start_session(&self, spec: &SessionSpec) -> Result<()> {
        self.compute.start_session(spec).await
    }
    async fn stop_session(&self, session: SessionId) -> Result<()> {
        self.compute.stop_session(session).await
    }
    async fn exec(&self, session: SessionId, request: ExecRequest) -> Result<ExecStream> {
        self.compute.exec(session, request).await
    }
    async fn attach_pty(
        &self,
        session: SessionId,
        size: PtySize,
    ) -> Result<Box<dyn PtyConnection>> {
        self.compute.attach_pty(session, size).await
    }
    async fn status(&self, session: SessionId) -> Result<ComputeStatus> {
        self.compute.status(session).await
    }
    async fn usage(&self, session: SessionId) -> Result<ResourceUsage> {
        self.compute.usage(session).await
    }
    async fn running_sessions(&self) -> Result<Vec<SessionId>> {
        self.compute.running_sessions().await
    }
    fn take_notices(&self) -> Vec<ComputeNotice> {
        self.compute.take_notices()
    }
}

macro_rules! conformance_of {
    ($module:ident, $flavour:expr) => {
        /// The `ComputeProvider` suite on this flavour.
        mod $module {
            use std::sync::Arc;

            use onmemos_core::ports::ComputeProvider;

            onmemos_core::compute_conformance!(
                || async { super::computes($flavour, 1).await.pop() },
                restart = || async {
                    let mut pair = super::computes($flavour, 2).await;
                    let again: Arc<dyn ComputeProvider> = pair.pop()?;
                    Some((pair.pop()?, again))
                }
            );
        }
    };
}

conformance_of!(conformance_gke, onmemos_backends::compute::Flavour::Gke);
conformance_of!(conformance_eks, onmemos_backends::compute::Flavour::Eks);
conformance_of!(conformance_plain, onmemos_backends::compute::Flavour::Plain);

/// A session sees its workspace's prefix of the bucket at `/workspace/files`, read and
/// written both ways, whichever CSI driver mounts it (on the stand-in, the kubelet maps each
/// driver's bucket to a directory and scopes it by the prefix the mount names).
#[tokio::test]
async fn a_bucket_prefix_is_the_workspace_files_inside_the_pod_for_each_csi_driver() {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use onmemos_core::ports::compute::{BucketMount, BucketStore, FilesMount};

    if std::env::var_os("KUBECONFIG").is_some() {
        eprintln!("SKIPPED on a real cluster: the bucket is the stand-in's");
        return;
    }
    for (flavour, store, driver) in [
        (Flavour::Gke, BucketStore::Gcs, "gcsfuse.csi.storage.gke.io"),
        (
            Flavour::Eks,
            BucketStore::S3 {
                region: Some("eu-west-1".into()),
            },
            "s3.csi.aws.com",
        ),
        (
            Flavour::Plain,
            BucketStore::Azure {
                account: "acct".into(),
            },
            "blob.csi.azure.com",
        ),
    ] {
        let standin = StandIn::start().await.unwrap_or_else(|e| panic!("{e}"));
        for node in nodes(flavour) {
            standin
                .cluster()
                .add_node(&node)
                .unwrap_or_else(|e| panic!("{e:?}"));
        }
        let url = standin.url().parse().unwrap_or_else(|e| panic!("{e}"));
        let options = KubeOptions {
            flavour,
            run_as: onmemos_backends::compute::RunAs::Image,
            ..KubeOptions::default()
        };
        let compute = KubernetesCompute::with_config(kube::Config::new(url), options)
            .unwrap_or_else(|e| panic!("{e}"));
        let (workspace, session) = (WorkspaceId::new(), SessionId::new());
        let prefix = format!("workspaces/{workspace}");
        let dir = standin.csi_bucket_dir(driver, "files").join(&prefix);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("in-bucket.txt"), "from the bucket\n")
            .unwrap_or_else(|e| panic!("{e}"));
        // Another workspace's objects in the same bucket stay out of sight.
        let other = standin
            .csi_bucket_dir(driver, "files")
            .join("workspaces/ws_other");
        std::fs::create_dir_all(&other).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(other.join("secret.txt"), "not yours").unwrap_or_else(|e| panic!("{e}"));
        kube_common::provision(&compute, workspace).await;
        let files = FilesMount::Bucket(BucketMount {
            store,
            bucket: "files".into(),
            prefix,
        });
        compute
            .start_session(&kube_common::session_with(session, workspace, Some(files)))
            .await
            .unwrap_or_else(|e| panic!("{driver}: start: {e}"));
        let script = "cat files/in-bucket.txt; ls files; echo from-pod > files/written.txt";
        let stdout = kube_common::stdout_of(
            &compute,
            session,
            ExecRequest {
                command: vec!["sh".into(), "-c".into(), script.into()],
                env: BTreeMap::new(),
                stdin: None,
                timeout: Duration::from_secs(30),
            },
        )
        .await;
        assert_eq!(
            String::from_utf8_lossy(&stdout),
            "from the bucket\nin-bucket.txt\n",
            "{driver}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("written.txt"))
                .ok()
                .as_deref(),
            Some("from-pod\n"),
            "{driver}: a file the session wrote is not in the bucket"
        );
        compute
            .stop_session(session)
            .await
            .unwrap_or_else(|e| panic!("stop: {e}"));
        compute
            .teardown_workspace(workspace)
            .await
            .unwrap_or_else(|e| panic!("teardown: {e}"));
    }
}

/// Stopping a session whose pod the watch has not seen yet (its start being undone while the
/// watch is relisting) still deletes the pod: it is found by its label.
#[tokio::test]
async fn stopping_a_session_the_watch_has_not_seen_deletes_its_pod() {
    use std::time::Duration;

    use onmemos_kube_standin::{Fault, FaultKind};

    if std::env::var_os("KUBECONFIG").is_some() {
        eprintln!("SKIPPED on a real cluster: the test stalls the stand-in's watch");
        return;
    }
    let standin = StandIn::start().await.unwrap_or_else(|e| panic!("{e}"));
    standin
        .cluster()
        .add_node(&NodeSpec::new("node-a"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let url = standin.url().parse().unwrap_or_else(|e| panic!("{e}"));
    let compute = KubernetesCompute::with_config(kube::Config::new(url), KubeOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    // The watch has listed once.
    assert!(compute.running_sessions().await.is_ok_and(|s| s.is_empty()));
    // Its next list stalls: the watch is blind for a while.
    standin.cluster().inject(Fault {
        method: Some(http::Method::GET),
        path_prefix: "/api/v1/pods".into(),
        times: 1,
        kind: FaultKind::Stall(Duration::from_secs(5)),
    });
    standin.cluster().end_watches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = standin.client().unwrap_or_else(|e| panic!("{e}"));
    let session = SessionId::new();
    let pods = kube_common::labelled_pod(client, "onmemos-ws-blind", "unseen", session).await;
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let left = pods
        .get_opt("unseen")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        left.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "the pod of a session stopped before the watch saw it was left running"
    );
}

/// Pods labelled as OnMemOS sessions in namespaces that are not this installation's (another
/// installation with its own prefix shares the cluster) are none of its business: not listed,
/// not stopped, not removed as orphans.
#[tokio::test]
async fn session_pods_outside_the_installations_namespaces_are_left_alone() {
    use std::time::Duration;

    if std::env::var_os("KUBECONFIG").is_some() {
        eprintln!("SKIPPED on a real cluster: the test makes namespaces of its own");
        return;
    }
    let standin = StandIn::start().await.unwrap_or_else(|e| panic!("{e}"));
    standin
        .cluster()
        .add_node(&NodeSpec::new("node-a"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let client = standin.client().unwrap_or_else(|e| panic!("{e}"));
    let foreign = SessionId::new();
    let pods = kube_common::labelled_pod(client, "other-ws-x", "theirs", foreign).await;
    let url = standin.url().parse().unwrap_or_else(|e| panic!("{e}"));
    let compute = KubernetesCompute::with_config(kube::Config::new(url), KubeOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = compute
        .running_sessions()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !running.contains(&foreign),
        "another installation's pod is listed as ours"
    );
    assert_eq!(
        compute.status(foreign).await.ok(),
        Some(ComputeStatus::Gone)
    );
    compute
        .stop_session(foreign)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let left = pods.get("theirs").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        left.metadata.deletion_timestamp.is_none(),
        "another installation's pod was deleted"
    );
}
