//! The objects `KubernetesCompute` creates, as pure functions of what it is asked: a namespace
//! per workspace (service account, quota, limits, network policy) and a pod per session. Every
//! field is here, so the tests pin the manifests exactly, flavour by flavour.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::model::Placement;
use onmemos_core::ports::compute::{
    BucketMount, BucketStore, FilesMount, SessionSpec, WorkspaceSpec,
};
use serde_json::{Value, json};

use super::options::{CapacityLabels, Flavour, KubeOptions, RunAs};

/// The label every object OnMemOS creates carries; the server selects on it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "onmemos");
/// The label naming a session's id.
pub const SESSION_LABEL: &str = "onmemos.dev/session";
/// The label naming a workspace's id.
pub const WORKSPACE_LABEL: &str = "onmemos.dev/workspace";
/// The label naming a workspace's owner.
pub const OWNER_LABEL: &str = "onmemos.dev/owner";
/// The label naming a session's template.
pub const TEMPLATE_LABEL: &str = "onmemos.dev/template";
/// The service account of every session pod.
pub const SERVICE_ACCOUNT: &str = "onmemos-session";
/// The container of a session pod.
pub const CONTAINER: &str = "session";
/// The claim of an S3 workspace's files (Mountpoint for S3 mounts static volumes only).
pub const FILES_CLAIM: &str = "onmemos-files";
/// Seconds a session pod may outlive its maximum duration before Kubernetes kills it: the
/// monitor stops it first, at the exact deadline, and charges it; this is the backstop.
pub const DEADLINE_MARGIN_SECS: i64 = 300;
/// Where the session works, as local sessions do.
pub const WORKDIR: &str = "/workspace";
/// Where the workspace's stored files appear.
pub const FILES_PATH: &str = "/workspace/files";

/// `ws_0190…` → `0190…`: the 32 hex digits of an id.
fn hex(id: &impl std::fmt::Display) -> String {
    let text = id.to_string();
    text.split_once('_')
        .map_or(text.clone(), |(_, hex)| hex.to_owned())
}

/// How the names of this installation's workspace namespaces start (`onmemos-ws-`).
pub fn namespaces_start(options: &KubeOptions) -> String {
    format!("{}ws-", options.namespace_prefix)
}

/// The namespace of a workspace: a DNS label from its id (`onmemos-ws-0190…`).
pub fn namespace_name(options: &KubeOptions, workspace: WorkspaceId) -> String {
    format!("{}{}", namespaces_start(options), hex(&workspace))
}

/// The pod of a session (`ses-0190…`).
pub fn pod_name(session: SessionId) -> String {
    format!("ses-{}", hex(&session))
}

/// The persistent volume of an S3 workspace's files (cluster-wide, so named by namespace).
pub fn files_volume_name(namespace: &str) -> String {
    format!("{namespace}-files")
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    // Every manifest here is a literal of the type's own shape; the tests round-trip each.
    serde_json::from_value(value)
        .unwrap_or_else(|e| unreachable!("a manifest does not fit its type: {e}"))
}

fn workspace_labels(spec: &WorkspaceSpec) -> Value {
    json!({
        MANAGED_BY.0: MANAGED_BY.1,
        WORKSPACE_LABEL: spec.workspace.to_string(),
        OWNER_LABEL: spec.owner.to_string(),
    })
}

/// The identity a workspace's service account is bound to, from the template.
pub fn identity(options: &KubeOptions, spec: &WorkspaceSpec) -> Option<String> {
    options.identity.as_ref().map(|template| {
        template
            .replace("{workspace_hex}", &hex(&spec.workspace))
            .replace("{workspace}", &spec.workspace.to_string())
            .replace("{namespace}", &namespace_name(options, spec.workspace))
            .replace("{owner}", &spec.owner.to_string())
    })
}

/// The workspace's namespace.
pub fn namespace(options: &KubeOptions, spec: &WorkspaceSpec) -> Namespace {
    typed(json!({
        "metadata": {
            "name": namespace_name(options, spec.workspace),
            "labels": workspace_labels(spec),
            "annotations": { "onmemos.dev/workspace-name": spec.name },
        }
    }))
}

/// The service account of the workspace's sessions: no token unless an identity is bound;
/// annotated for GKE Workload Identity or EKS IRSA when one is.
pub fn service_account(options: &KubeOptions, spec: &WorkspaceSpec) -> ServiceAccount {
    let identity = identity(options, spec);
    let annotations = match (&identity, options.flavour) {
        (Some(id), Flavour::Gke) => json!({ "iam.gke.io/gcp-service-account": id }),
        (Some(id), Flavour::Eks) => json!({ "eks.amazonaws.com/role-arn": id }),
        _ => json!({}),
    };
    typed(json!({
        "metadata": {
            "name": SERVICE_ACCOUNT,
            "namespace": namespace_name(options, spec.workspace),
            "labels": workspace_labels(spec),
            "annotations": annotations,
        },
        "automountServiceAccountToken": identity.is_some(),
        "imagePullSecrets": options.image_pull_secrets.iter().map(|s| json!({ "name": s })).collect::<Vec<_>>(),
    }))
}

/// The workspace's quota: pods, and no load balancers or node ports.
pub fn resource_quota(options: &KubeOptions, spec: &WorkspaceSpec) -> ResourceQuota {
    typed(json!({
        "metadata": {
            "name": "onmemos-quota",
            "namespace": namespace_name(options, spec.workspace),
            "labels": workspace_labels(spec),
        },
        "spec": { "hard": {
            "pods": options.max_pods.to_string(),
            "services.loadbalancers": "0",
            "services.nodeports": "0",
        } },
    }))
}

/// Defaults and bounds for any container in the namespace that does not say its own.
pub fn limit_range(options: &KubeOptions, spec: &WorkspaceSpec) -> LimitRange {
    typed(json!({
        "metadata": {
            "name": "onmemos-limits",
            "namespace": namespace_name(options, spec.workspace),
            "labels": workspace_labels(spec),
        },
        "spec": { "limits": [{
            "type": "Container",
            "default": { "cpu": "1", "memory": "1Gi" },
            "defaultRequest": { "cpu": "100m", "memory": "128Mi" },
        }] },
    }))
}

/// Ingress only from the workspace's own pods: other workspaces cannot reach its sessions.
pub fn network_policy(options: &KubeOptions, spec: &WorkspaceSpec) -> NetworkPolicy {
    typed(json!({
        "metadata": {
            "name": "onmemos-isolate",
            "namespace": namespace_name(options, spec.workspace),
            "labels": workspace_labels(spec),
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{ "from": [{ "podSelector": {} }] }],
        },
    }))
}

/// The mount options that scope a bucket mount to the workspace's prefix, owned by the
/// session's user.
fn owner_options(options: &KubeOptions) -> Option<i64> {
    match options.run_as {
        RunAs::User(uid) => Some(uid),
        RunAs::Image => None,
    }
}

/// The static volume of an S3 workspace's files (Mountpoint for Amazon S3 CSI mounts only
/// those), scoped to the workspace's prefix and bound to its claim.
pub fn files_volume(
    options: &KubeOptions,
    workspace: WorkspaceId,
    mount: &BucketMount,
) -> PersistentVolume {
    let namespace = namespace_name(options, workspace);
    let mut mount_options = vec![
        format!("prefix {}/", mount.prefix),
        "allow-delete".to_owned(),
        "allow-other".to_owned(),
    ];
    if let BucketStore::S3 {
        region: Some(region),
    } = &mount.store
    {
        mount_options.push(format!("region {region}"));
    }
    if let Some(uid) = owner_options(options) {
        mount_options.push(format!("uid={uid}"));
        mount_options.push(format!("gid={uid}"));
    }
    typed(json!({
        "metadata": {
            "name": files_volume_name(&namespace),
            "labels": { MANAGED_BY.0: MANAGED_BY.1, WORKSPACE_LABEL: workspace.to_string() },
        },
        "spec": {
            "capacity": { "storage": "1200Gi" },
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": mount_options,
            "claimRef": { "namespace": namespace, "name": FILES_CLAIM },
            "csi": {
                "driver": "s3.csi.aws.com",
                "volumeHandle": files_volume_name(&namespace),
                "volumeAttributes": { "bucketName": mount.bucket },
            },
        },
    }))
}

/// The claim of an S3 workspace's files, bound to [`files_volume`].
pub fn files_claim(options: &KubeOptions, workspace: WorkspaceId) -> PersistentVolumeClaim {
    let namespace = namespace_name(options, workspace);
    typed(json!({
        "metadata": {
            "name": FILES_CLAIM,
            "namespace": namespace,
            "labels": { MANAGED_BY.0: MANAGED_BY.1, WORKSPACE_LABEL: workspace.to_string() },
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": files_volume_name(&namespace),
            "resources": { "requests": { "storage": "1200Gi" } },
        },
    }))
}

/// The `files` volume of a session pod, and the pod annotations it needs; `None` for a kind
/// of files this version does not know how to mount.
fn files_volume_source(options: &KubeOptions, files: &FilesMount) -> Option<(Value, Value)> {
    Some(match files {
        FilesMount::Dir(dir) => (
            json!({ "name": "files", "hostPath": { "path": dir.display().to_string(), "type": "DirectoryOrCreate" } }),
            json!({}),
        ),
        FilesMount::Bucket(mount) => match &mount.store {
            BucketStore::Gcs => {
                let mut mount_options = vec![
                    format!("only-dir={}", mount.prefix),
                    "implicit-dirs".to_owned(),
                ];
                if let Some(uid) = owner_options(options) {
                    mount_options.push(format!("uid={uid}"));
                    mount_options.push(format!("gid={uid}"));
                }
                (
                    json!({ "name": "files", "csi": {
                        "driver": "gcsfuse.csi.storage.gke.io",
                        "volumeAttributes": {
                            "bucketName": mount.bucket,
                            "mountOptions": mount_options.join(","),
                        },
                    } }),
                    json!({ "gke-gcsfuse/volumes": "true" }),
                )
            }
            BucketStore::S3 { .. } => (
                json!({ "name": "files", "persistentVolumeClaim": { "claimName": FILES_CLAIM } }),
                json!({}),
            ),
            BucketStore::Azure { account } => {
                let mut attributes = json!({
                    "storageAccount": account,
                    "containerName": mount.bucket,
                    "mountOptions": format!("-o allow_other --subdirectory={}", mount.prefix),
                });
                if let Some(secret) = &options.azure_secret {
                    attributes["secretName"] = json!(secret);
                }
                (
                    json!({ "name": "files", "csi": { "driver": "blob.csi.azure.com", "volumeAttributes": attributes } }),
                    json!({}),
                )
            }
            _ => return None,
        },
        _ => return None,
    })
}

/// Node selectors and tolerations for the session's placement on this flavour.
fn placement(options: &KubeOptions, placement: Placement, gpu: bool) -> (Value, Value, Value) {
    let spot = placement == Placement::Spot;
    let mut selector = serde_json::Map::new();
    let mut tolerations = Vec::new();
    let mut affinity = json!(null);
    match options.flavour {
        Flavour::Gke => {
            if spot {
                selector.insert("cloud.google.com/gke-spot".into(), json!("true"));
                tolerations.push(json!({ "key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule" }));
            } else {
                affinity = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                    { "matchExpressions": [{ "key": "cloud.google.com/gke-spot", "operator": "DoesNotExist" }] }
                ] } } });
            }
            if gpu && let Some(accelerator) = &options.gpu_accelerator {
                selector.insert(
                    "cloud.google.com/gke-accelerator".into(),
                    json!(accelerator),
                );
            }
        }
        Flavour::Eks => match options.capacity_labels {
            CapacityLabels::Eks => {
                selector.insert(
                    "eks.amazonaws.com/capacityType".into(),
                    json!(if spot { "SPOT" } else { "ON_DEMAND" }),
                );
            }
            CapacityLabels::Karpenter => {
                selector.insert(
                    "karpenter.sh/capacity-type".into(),
                    json!(if spot { "spot" } else { "on-demand" }),
                );
            }
        },
        Flavour::Plain => {
            if spot {
                selector.insert("onmemos.dev/capacity".into(), json!("spot"));
                tolerations.push(json!({ "key": "onmemos.dev/capacity", "operator": "Equal", "value": "spot", "effect": "NoSchedule" }));
            }
        }
    }
    if gpu {
        tolerations
            .push(json!({ "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" }));
    }
    (Value::Object(selector), Value::Array(tolerations), affinity)
}

/// CPU in the canonical form the API server answers with: `2`, `1500m`.
fn cpu_quantity(millis: u32) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Memory in the canonical form the API server answers with: `2Gi`, `1536Mi`.
fn memory_quantity(mib: u32) -> String {
    if mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

/// The pod of a session.
pub fn pod(options: &KubeOptions, spec: &SessionSpec) -> Pod {
    let namespace = namespace_name(options, spec.workspace);
    let r = spec.resources;
    let mut resources = json!({
        "cpu": cpu_quantity(r.cpu_millis),
        "memory": memory_quantity(r.memory_mib),
        "ephemeral-storage": format!("{}Gi", r.disk_gib),
    });
    if r.gpu > 0 {
        resources["nvidia.com/gpu"] = json!(r.gpu.to_string());
    }
    let mut env: Vec<Value> = spec
        .env
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "HOME" | "TERM"))
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    env.push(json!({ "name": "HOME", "value": WORKDIR }));
    env.push(json!({ "name": "TERM", "value": "xterm-256color" }));
    let mut volumes = vec![
        json!({ "name": "workspace", "emptyDir": { "sizeLimit": format!("{}Gi", r.disk_gib) } }),
    ];
    let mut mounts = vec![json!({ "name": "workspace", "mountPath": WORKDIR })];
    let mut annotations = json!({});
    if let Some((volume, extra)) = spec
        .files
        .as_ref()
        .and_then(|f| files_volume_source(options, f))
    {
        volumes.push(volume);
        mounts.push(json!({ "name": "files", "mountPath": FILES_PATH }));
        annotations = extra;
    }
    let pod_security = match options.run_as {
        RunAs::User(uid) => json!({
            "runAsNonRoot": true, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": { "type": "RuntimeDefault" },
        }),
        RunAs::Image => json!({ "seccompProfile": { "type": "RuntimeDefault" } }),
    };
    let (selector, tolerations, affinity) = placement(options, spec.placement, r.gpu > 0);
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "serviceAccountName": SERVICE_ACCOUNT,
        "enableServiceLinks": false,
        "terminationGracePeriodSeconds": 5,
        "securityContext": pod_security,
        "nodeSelector": selector,
        "tolerations": tolerations,
        "imagePullSecrets": options.image_pull_secrets.iter().map(|s| json!({ "name": s })).collect::<Vec<_>>(),
        "volumes": volumes,
        "containers": [{
            "name": CONTAINER,
            "image": spec.image,
            // The session's shell is the container's process: it ending ends the session.
            "command": ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -i; else exec sh -i; fi"],
            "workingDir": WORKDIR,
            "stdin": true,
            "tty": true,
            "env": env,
            "resources": { "requests": resources.clone(), "limits": resources },
            "volumeMounts": mounts,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "privileged": false,
                "capabilities": { "drop": ["ALL"] },
            },
        }],
    });
    if !affinity.is_null() {
        pod_spec["affinity"] = affinity;
    }
    if let Some(max) = spec.max_duration {
        let secs = i64::try_from(max.as_secs()).unwrap_or(i64::MAX / 2);
        pod_spec["activeDeadlineSeconds"] = json!(secs.saturating_add(DEADLINE_MARGIN_SECS));
    }
    let mut labels = BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (SESSION_LABEL.to_owned(), spec.session.to_string()),
        (WORKSPACE_LABEL.to_owned(), spec.workspace.to_string()),
    ]);
    if let Some(template) = spec.template {
        labels.insert(TEMPLATE_LABEL.to_owned(), template.to_string());
    }
    typed(json!({
        "metadata": {
            "name": pod_name(spec.session),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": pod_spec,
    }))
}
