//! The server's ClusterRole (`deploy/kubernetes/rbac.yaml`) against what `KubernetesCompute`
//! really does: every call the backend makes through a session's whole life is allowed by a
//! rule, and every verb a rule allows is used — least privilege, held by the code's own calls.
//! The manifests are applied with the real `kubectl` (`--dry-run=server`) to the stand-in.
#![cfg(feature = "kubernetes")]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use onmemos_backends::compute::{Flavour, KubeOptions, KubernetesCompute, RunAs};
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::ports::ComputeProvider;
use onmemos_core::ports::compute::{BucketMount, BucketStore, ExecRequest, FilesMount, PtySize};
use onmemos_kube_standin::{Access, NodeSpec, StandIn};

mod kube_common;
use serde_json::Value;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes");

/// Whether kubectl can run here (it must in CI).
fn have_kubectl() -> bool {
    onmemos_kube_standin::kubectl_on_path()
}

fn kubectl(standin: &StandIn, args: &[&str]) -> std::process::Output {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    tokio::task::block_in_place(|| {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(standin.kubeconfig())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("kubectl: {e}"))
    })
}

/// Everything the backend does in a session's life: a workspace with S3 files, a session,
/// a command with input, a terminal, usage, a stop, and the workspace's teardown.
async fn every_call(standin: &StandIn) {
    let url = standin.url().parse().unwrap_or_else(|e| panic!("{e}"));
    let options = KubeOptions {
        flavour: Flavour::Eks,
        run_as: RunAs::Image,
        start_timeout: Duration::from_secs(30),
        ..KubeOptions::default()
    };
    let compute = KubernetesCompute::with_config(kube::Config::new(url), options)
        .unwrap_or_else(|e| panic!("compute: {e}"));
    let workspace = WorkspaceId::new();
    let session = SessionId::new();
    kube_common::provision(&compute, workspace).await;
    let files = FilesMount::Bucket(BucketMount {
        store: BucketStore::S3 { region: None },
        bucket: "files".into(),
        prefix: format!("workspaces/{workspace}"),
    });
    compute
        .start_session(&kube_common::session_with(session, workspace, Some(files)))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let echoed = kube_common::stdout_of(
        &compute,
        session,
        ExecRequest {
            command: vec!["cat".into()],
            env: BTreeMap::new(),
            stdin: Some(Bytes::from_static(b"in")),
            timeout: Duration::from_secs(30),
        },
    )
    .await;
    assert_eq!(echoed, b"in");
    let pty = compute
        .attach_pty(session, PtySize { rows: 24, cols: 80 })
        .await
        .unwrap_or_else(|e| panic!("attach: {e}"));
    pty.write(b"true\n")
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    drop(pty);
    compute
        .usage(session)
        .await
        .unwrap_or_else(|e| panic!("usage: {e}"));
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    compute
        .teardown_workspace(workspace)
        .await
        .unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// (group, resource, verb) triples a ClusterRole's rules allow.
fn allowed(role: &Value) -> BTreeSet<(String, String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "a wildcard in {rule}"
                    );
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_role_allows_exactly_what_the_backend_does_and_the_manifests_apply() {
    if !have_kubectl() {
        return;
    }
    let cluster = StandIn::start().await.unwrap_or_else(|e| panic!("{e}"));
    let namespace = format!("{DEPLOY}/namespace.yaml");
    // kubectl validates as it does against a cluster: the stand-in's OpenAPI documents say the
    // server checks fields itself (`fieldValidation=Strict`).
    let made = kubectl(&cluster, &["apply", "-f", &namespace]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let applied = kubectl(
        &cluster,
        &["apply", "--dry-run=server", "-f", DEPLOY, "-o", "json"],
    );
    assert!(
        applied.status.success(),
        "kubectl apply --dry-run=server -f deploy/kubernetes/: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let applied: Value = serde_json::from_slice(&applied.stdout).unwrap_or_else(|e| panic!("{e}"));
    let kinds: BTreeSet<&str> = applied["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} in deploy/kubernetes: {kinds:?}"
        );
    }
    let role = applied["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["kind"] == "ClusterRole")
        .unwrap_or_else(|| panic!("no ClusterRole"));
    let allowed = allowed(role);

    let standin = StandIn::start().await.unwrap_or_else(|e| panic!("{e}"));
    standin
        .cluster()
        .add_node(&NodeSpec::new("node-a").label("eks.amazonaws.com/capacityType", "ON_DEMAND"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    every_call(&standin).await;
    let used: BTreeSet<(String, String, String)> = standin
        .cluster()
        .accesses()
        .into_iter()
        .map(
            |Access {
                 verb,
                 group,
                 resource,
             }| (group, resource, verb),
        )
        .collect();
    let missing: Vec<_> = used.difference(&allowed).collect();
    assert!(
        missing.is_empty(),
        "the backend does what the ClusterRole does not allow: {missing:?}"
    );
    let unused: Vec<_> = allowed.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "the ClusterRole allows what the backend never does: {unused:?}"
    );
}
