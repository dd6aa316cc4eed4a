//! The objects `KubernetesCompute` creates, pinned exactly, flavour by flavour: what a
//! cluster admin reviews before letting OnMemOS in.
#![cfg(feature = "kubernetes")]

use std::collections::BTreeMap;
use std::time::Duration;

use onmemos_backends::compute::manifests;
use onmemos_backends::compute::{CapacityLabels, Flavour, KubeOptions, RunAs};
use onmemos_core::id::{SessionId, TemplateId, UserId, WorkspaceId};
use onmemos_core::model::{Placement, Resources};
use onmemos_core::ports::compute::{
    BucketMount, BucketStore, FilesMount, SessionSpec, WorkspaceSpec,
};
use serde_json::{Value, json};

const WORKSPACE: &str = "ws_0190f5a2b3c4d5e6f708192a3b4c5d6e";
const OWNER: &str = "usr_0190f5a2b3c4d5e6f708192a3b4c5d6f";
const SESSION: &str = "ses_0190f5a2b3c4d5e6f708192a3b4c5d70";
const TEMPLATE: &str = "tpl_0190f5a2b3c4d5e6f708192a3b4c5d71";
const NAMESPACE: &str = "onmemos-ws-0190f5a2b3c4d5e6f708192a3b4c5d6e";

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

fn workspace() -> WorkspaceSpec {
    WorkspaceSpec {
        workspace: parse::<WorkspaceId>(WORKSPACE),
        owner: parse::<UserId>(OWNER),
        name: "data-science".into(),
    }
}

fn session(placement: Placement, gpu: u32, files: Option<FilesMount>) -> SessionSpec {
    SessionSpec {
        session: parse::<SessionId>(SESSION),
        workspace: parse::<WorkspaceId>(WORKSPACE),
        template: Some(parse::<TemplateId>(TEMPLATE)),
        image: "python:3.12-slim".into(),
        resources: Resources {
            cpu_millis: 2000,
            memory_mib: 4096,
            gpu,
            disk_gib: 10,
        },
        env: BTreeMap::from([
            ("FROM_TEMPLATE".into(), "yes".into()),
            ("HOME".into(), "/elsewhere".into()),
        ]),
        placement,
        files,
        max_duration: Some(Duration::from_secs(3600)),
    }
}

fn options(flavour: Flavour) -> KubeOptions {
    KubeOptions {
        flavour,
        ..KubeOptions::default()
    }
}

fn value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or_else(|e| panic!("{e}"))
}

fn labels() -> Value {
    json!({
        "app.kubernetes.io/managed-by": "onmemos",
        "onmemos.dev/workspace": WORKSPACE,
        "onmemos.dev/owner": OWNER,
    })
}

/// The pod of a plain on-demand session without files; each case below changes this.
fn base_pod() -> Value {
    let resources = json!({ "cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi" });
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "ses-0190f5a2b3c4d5e6f708192a3b4c5d70",
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/managed-by": "onmemos",
                "onmemos.dev/session": SESSION,
                "onmemos.dev/workspace": WORKSPACE,
                "onmemos.dev/template": TEMPLATE,
            },
            "annotations": {},
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 3900,
            "serviceAccountName": "onmemos-session",
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": 5,
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "nodeSelector": {},
            "tolerations": [],
            "imagePullSecrets": [],
            "volumes": [{ "name": "workspace", "emptyDir": { "sizeLimit": "10Gi" } }],
            "containers": [{
                "name": "session",
                "image": "python:3.12-slim",
                "command": ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -i; else exec sh -i; fi"],
                "workingDir": "/workspace",
                "stdin": true,
                "tty": true,
                "env": [
                    { "name": "FROM_TEMPLATE", "value": "yes" },
                    { "name": "HOME", "value": "/workspace" },
                    { "name": "TERM", "value": "xterm-256color" },
                ],
                "resources": { "requests": resources, "limits": resources },
                "volumeMounts": [{ "name": "workspace", "mountPath": "/workspace" }],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "privileged": false,
                    "capabilities": { "drop": ["ALL"] },
                },
            }],
        },
    })
}

/// Appends `item` to the array at `array`.
fn push(array: &mut Value, item: Value) {
    match array.as_array_mut() {
        Some(items) => items.push(item),
        None => panic!("{array} is not an array"),
    }
}

fn files_mount() -> Value {
    json!({ "name": "files", "mountPath": "/workspace/files" })
}

#[test]
fn a_plain_on_demand_pod_is_exactly_this() {
    let pod = manifests::pod(
        &options(Flavour::Plain),
        &session(Placement::OnDemand, 0, None),
    );
    assert_eq!(value(&pod), base_pod());
}

#[test]
fn a_plain_spot_pod_selects_and_tolerates_the_spot_label() {
    let pod = manifests::pod(&options(Flavour::Plain), &session(Placement::Spot, 0, None));
    let mut want = base_pod();
    want["spec"]["nodeSelector"] = json!({ "onmemos.dev/capacity": "spot" });
    want["spec"]["tolerations"] = json!([{ "key": "onmemos.dev/capacity", "operator": "Equal", "value": "spot", "effect": "NoSchedule" }]);
    assert_eq!(value(&pod), want);
}

#[test]
fn a_gke_spot_gpu_pod_with_cloud_storage_files_is_exactly_this() {
    let o = KubeOptions {
        gpu_accelerator: Some("nvidia-l4".into()),
        ..options(Flavour::Gke)
    };
    let files = FilesMount::Bucket(BucketMount {
        store: BucketStore::Gcs,
        bucket: "onmemos-files".into(),
        prefix: format!("workspaces/{WORKSPACE}"),
    });
    let pod = manifests::pod(&o, &session(Placement::Spot, 1, Some(files)));
    let mut want = base_pod();
    want["metadata"]["annotations"] = json!({ "gke-gcsfuse/volumes": "true" });
    want["spec"]["nodeSelector"] = json!({
        "cloud.google.com/gke-spot": "true",
        "cloud.google.com/gke-accelerator": "nvidia-l4",
    });
    want["spec"]["tolerations"] = json!([
        { "key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule" },
        { "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" },
    ]);
    for side in ["requests", "limits"] {
        want["spec"]["containers"][0]["resources"][side]["nvidia.com/gpu"] = json!("1");
    }
    push(
        &mut want["spec"]["volumes"],
        json!({ "name": "files", "csi": {
            "driver": "gcsfuse.csi.storage.gke.io",
            "volumeAttributes": {
                "bucketName": "onmemos-files",
                "mountOptions": format!("only-dir=workspaces/{WORKSPACE},implicit-dirs,uid=1000,gid=1000"),
            },
        } }),
    );
    push(
        &mut want["spec"]["containers"][0]["volumeMounts"],
        files_mount(),
    );
    assert_eq!(value(&pod), want);
}

#[test]
fn a_gke_on_demand_pod_keeps_off_spot_nodes() {
    let pod = manifests::pod(
        &options(Flavour::Gke),
        &session(Placement::OnDemand, 0, None),
    );
    let mut want = base_pod();
    want["spec"]["affinity"] = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
        { "matchExpressions": [{ "key": "cloud.google.com/gke-spot", "operator": "DoesNotExist" }] }
    ] } } });
    assert_eq!(value(&pod), want);
}

#[test]
fn an_eks_spot_pod_with_s3_files_mounts_its_claim_and_the_volume_is_prefix_scoped() {
    let mount = BucketMount {
        store: BucketStore::S3 {
            region: Some("eu-west-1".into()),
        },
        bucket: "onmemos-files".into(),
        prefix: format!("workspaces/{WORKSPACE}"),
    };
    let o = options(Flavour::Eks);
    let pod = manifests::pod(
        &o,
        &session(Placement::Spot, 0, Some(FilesMount::Bucket(mount.clone()))),
    );
    let mut want = base_pod();
    want["spec"]["nodeSelector"] = json!({ "eks.amazonaws.com/capacityType": "SPOT" });
    push(
        &mut want["spec"]["volumes"],
        json!({ "name": "files", "persistentVolumeClaim": { "claimName": "onmemos-files" } }),
    );
    push(
        &mut want["spec"]["containers"][0]["volumeMounts"],
        files_mount(),
    );
    assert_eq!(value(&pod), want);

    let volume = manifests::files_volume(&o, parse(WORKSPACE), &mount);
    assert_eq!(
        value(&volume),
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": format!("{NAMESPACE}-files"),
                "labels": { "app.kubernetes.io/managed-by": "onmemos", "onmemos.dev/workspace": WORKSPACE },
            },
            "spec": {
                "capacity": { "storage": "1200Gi" },
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "mountOptions": [
                    format!("prefix workspaces/{WORKSPACE}/"),
                    "allow-delete", "allow-other", "region eu-west-1", "uid=1000", "gid=1000",
                ],
                "claimRef": { "namespace": NAMESPACE, "name": "onmemos-files" },
                "csi": {
                    "driver": "s3.csi.aws.com",
                    "volumeHandle": format!("{NAMESPACE}-files"),
                    "volumeAttributes": { "bucketName": "onmemos-files" },
                },
            },
        })
    );
    assert_eq!(
        value(&manifests::files_claim(&o, parse(WORKSPACE))),
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": "onmemos-files",
                "namespace": NAMESPACE,
                "labels": { "app.kubernetes.io/managed-by": "onmemos", "onmemos.dev/workspace": WORKSPACE },
            },
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": format!("{NAMESPACE}-files"),
                "resources": { "requests": { "storage": "1200Gi" } },
            },
        })
    );
}

#[test]
fn eks_with_karpenter_uses_its_capacity_label_both_ways() {
    let o = KubeOptions {
        capacity_labels: CapacityLabels::Karpenter,
        ..options(Flavour::Eks)
    };
    for (placement, label) in [
        (Placement::Spot, "spot"),
        (Placement::OnDemand, "on-demand"),
    ] {
        let pod = manifests::pod(&o, &session(placement, 0, None));
        let mut want = base_pod();
        want["spec"]["nodeSelector"] = json!({ "karpenter.sh/capacity-type": label });
        assert_eq!(value(&pod), want, "{placement:?}");
    }
    let pod = manifests::pod(
        &options(Flavour::Eks),
        &session(Placement::OnDemand, 0, None),
    );
    assert_eq!(
        value(&pod)["spec"]["nodeSelector"],
        json!({ "eks.amazonaws.com/capacityType": "ON_DEMAND" })
    );
}

#[test]
fn azure_files_mount_a_subdirectory_of_the_container_and_local_files_a_host_path() {
    let o = KubeOptions {
        azure_secret: Some("onmemos-azure-key".into()),
        run_as: RunAs::Image,
        ..options(Flavour::Plain)
    };
    let azure = FilesMount::Bucket(BucketMount {
        store: BucketStore::Azure {
            account: "onmemosacct".into(),
        },
        bucket: "files".into(),
        prefix: format!("workspaces/{WORKSPACE}"),
    });
    let pod = value(&manifests::pod(
        &o,
        &session(Placement::OnDemand, 0, Some(azure)),
    ));
    assert_eq!(
        pod["spec"]["volumes"][1],
        json!({ "name": "files", "csi": { "driver": "blob.csi.azure.com", "volumeAttributes": {
            "storageAccount": "onmemosacct",
            "containerName": "files",
            "mountOptions": format!("-o allow_other --subdirectory=workspaces/{WORKSPACE}"),
            "secretName": "onmemos-azure-key",
        } } })
    );
    assert_eq!(
        pod["spec"]["securityContext"],
        json!({ "seccompProfile": { "type": "RuntimeDefault" } }),
        "run_as_user=image leaves the user to the image"
    );
    let local = FilesMount::Dir("/srv/onmemos/files/workspaces/x".into());
    let pod = value(&manifests::pod(
        &o,
        &session(Placement::OnDemand, 0, Some(local)),
    ));
    assert_eq!(
        pod["spec"]["volumes"][1],
        json!({ "name": "files", "hostPath": { "path": "/srv/onmemos/files/workspaces/x", "type": "DirectoryOrCreate" } })
    );
}

#[test]
fn the_workspace_namespace_and_its_guard_rails_are_exactly_these() {
    let o = options(Flavour::Plain);
    let ws = workspace();
    assert_eq!(
        value(&manifests::namespace(&o, &ws)),
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": NAMESPACE, "labels": labels(),
            "annotations": { "onmemos.dev/workspace-name": "data-science" },
        } })
    );
    let meta = |name: &str| json!({ "name": name, "namespace": NAMESPACE, "labels": labels() });
    assert_eq!(
        value(&manifests::service_account(&o, &ws)),
        json!({ "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": "onmemos-session", "namespace": NAMESPACE, "labels": labels(), "annotations": {} },
            "automountServiceAccountToken": false, "imagePullSecrets": [] })
    );
    assert_eq!(
        value(&manifests::resource_quota(&o, &ws)),
        json!({ "apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("onmemos-quota"),
            "spec": { "hard": { "pods": "20", "services.loadbalancers": "0", "services.nodeports": "0" } } })
    );
    assert_eq!(
        value(&manifests::limit_range(&o, &ws)),
        json!({ "apiVersion": "v1", "kind": "LimitRange", "metadata": meta("onmemos-limits"),
            "spec": { "limits": [{ "type": "Container",
                "default": { "cpu": "1", "memory": "1Gi" },
                "defaultRequest": { "cpu": "100m", "memory": "128Mi" } }] } })
    );
    assert_eq!(
        value(&manifests::network_policy(&o, &ws)),
        json!({ "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("onmemos-isolate"),
            "spec": { "podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{ "from": [{ "podSelector": {} }] }] } })
    );
}

#[test]
fn a_bound_identity_annotates_the_service_account_for_workload_identity_or_irsa_and_mounts_its_token()
 {
    let ws = workspace();
    let gke = KubeOptions {
        identity: Some("ws-{workspace_hex}@proj.iam.gserviceaccount.com".into()),
        image_pull_secrets: vec!["registry".into()],
        ..options(Flavour::Gke)
    };
    let sa = value(&manifests::service_account(&gke, &ws));
    assert_eq!(
        sa["metadata"]["annotations"],
        json!({ "iam.gke.io/gcp-service-account": "ws-0190f5a2b3c4d5e6f708192a3b4c5d6e@proj.iam.gserviceaccount.com" })
    );
    assert_eq!(sa["automountServiceAccountToken"], json!(true));
    assert_eq!(sa["imagePullSecrets"], json!([{ "name": "registry" }]));
    let eks = KubeOptions {
        identity: Some("arn:aws:iam::123456789012:role/onmemos-{owner}".into()),
        ..options(Flavour::Eks)
    };
    let sa = value(&manifests::service_account(&eks, &ws));
    assert_eq!(
        sa["metadata"]["annotations"],
        json!({ "eks.amazonaws.com/role-arn": format!("arn:aws:iam::123456789012:role/onmemos-{OWNER}") })
    );
    let pod = value(&manifests::pod(
        &gke,
        &session(Placement::OnDemand, 0, None),
    ));
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{ "name": "registry" }])
    );
}
