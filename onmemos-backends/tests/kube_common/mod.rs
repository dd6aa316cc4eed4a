//! Helpers of the Kubernetes compute tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use onmemos_core::id::{SessionId, UserId, WorkspaceId};
use onmemos_core::model::{Placement, Resources};
use onmemos_core::ports::ComputeProvider;
use onmemos_core::ports::compute::{
    ExecEvent, ExecRequest, FilesMount, SessionSpec, WorkspaceSpec,
};

/// A small on-demand session of `workspace` with `files`.
pub fn session_with(
    session: SessionId,
    workspace: WorkspaceId,
    files: Option<FilesMount>,
) -> SessionSpec {
    SessionSpec {
        session,
        workspace,
        template: None,
        image: "python:3.12-slim".into(),
        resources: Resources {
            cpu_millis: 500,
            memory_mib: 512,
            gpu: 0,
            disk_gib: 1,
        },
        env: BTreeMap::new(),
        placement: Placement::OnDemand,
        files,
        max_duration: None,
    }
}

/// Provisions `workspace`.
pub async fn provision(compute: &dyn ComputeProvider, workspace: WorkspaceId) {
    compute
        .provision_workspace(&WorkspaceSpec {
            workspace,
            owner: UserId::new(),
            name: "kube-test".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
}

/// What `request` printed on stdout.
pub async fn stdout_of(
    compute: &dyn ComputeProvider,
    session: SessionId,
    request: ExecRequest,
) -> Vec<u8> {
    let mut out = compute
        .exec(session, request)
        .await
        .unwrap_or_else(|e| panic!("exec: {e}"));
    let mut stdout = Vec::new();
    while let Some(event) = out.next().await {
        if let Ok(ExecEvent::Stdout(b)) = event {
            stdout.extend_from_slice(&b);
        }
    }
    stdout
}

/// Makes namespace `namespace` and in it a pod `name` labelled as the pod of `session`, made
/// behind the compute's back; the pods of that namespace.
pub async fn labelled_pod(
    client: kube::Client,
    namespace: &str,
    name: &str,
    session: SessionId,
) -> Api<Pod> {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": namespace } }))
            .unwrap_or_else(|e| panic!("{e}"));
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("namespace: {e}"));
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": {
            "app.kubernetes.io/managed-by": "onmemos", "onmemos.dev/session": session.to_string(),
        } },
        "spec": { "containers": [{ "name": "session", "image": "busybox", "command": ["sleep", "600"] }] },
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("pod: {e}"));
    pods
}
