//! Nodes a test adds to the cluster, with the labels and capacity the cloud providers give
//! theirs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A taint on a node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    /// The key.
    pub key: String,
    /// The value (may be empty).
    #[serde(default)]
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Taint {
    /// A taint `key=value:effect`.
    pub fn new(key: &str, value: &str, effect: &str) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut t = json!({ "key": self.key, "effect": self.effect });
        if !self.value.is_empty() {
            t["value"] = json!(self.value);
        }
        t
    }
}

/// A node to add: name, labels, allocatable capacity and taints. As JSON (the binary's
/// `--nodes` file), every field but `name` may be left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, from = "NodeFile")]
pub struct NodeSpec {
    /// The node's name.
    pub name: String,
    /// Its labels (the well-known ones are added: hostname, instance type, zone).
    pub labels: BTreeMap<String, String>,
    /// Allocatable CPU, in millicores.
    pub cpu_millis: u64,
    /// Allocatable memory, in bytes.
    pub memory_bytes: u64,
    /// Pods it can run.
    pub pods: u32,
    /// Its taints.
    pub taints: Vec<Taint>,
}

/// A node as the `--nodes` file states it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    cpu_millis: Option<u64>,
    memory_bytes: Option<u64>,
    pods: Option<u32>,
    #[serde(default)]
    taints: Vec<Taint>,
}

impl From<NodeFile> for NodeSpec {
    fn from(f: NodeFile) -> Self {
        let mut spec = NodeSpec::new(&f.name);
        spec.labels.extend(f.labels);
        spec.cpu_millis = f.cpu_millis.unwrap_or(spec.cpu_millis);
        spec.memory_bytes = f.memory_bytes.unwrap_or(spec.memory_bytes);
        spec.pods = f.pods.unwrap_or(spec.pods);
        spec.taints = f.taints;
        spec
    }
}

impl NodeSpec {
    /// A node with 4 CPUs, 16 GiB, 110 pods, instance type `m5.xlarge` in `zone-a`.
    pub fn new(name: &str) -> Self {
        let labels = BTreeMap::from([
            (
                "node.kubernetes.io/instance-type".to_owned(),
                "m5.xlarge".to_owned(),
            ),
            (
                "topology.kubernetes.io/zone".to_owned(),
                "zone-a".to_owned(),
            ),
        ]);
        Self {
            name: name.into(),
            labels,
            cpu_millis: 4000,
            memory_bytes: 16 << 30,
            pods: 110,
            taints: Vec::new(),
        }
    }

    /// The same with a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The same with this allocatable capacity.
    pub fn capacity(mut self, cpu_millis: u64, memory_bytes: u64, pods: u32) -> Self {
        self.cpu_millis = cpu_millis;
        self.memory_bytes = memory_bytes;
        self.pods = pods;
        self
    }

    /// The same with a taint.
    pub fn taint(mut self, taint: Taint) -> Self {
        self.taints.push(taint);
        self
    }

    /// The same as a GKE spot node (`cloud.google.com/gke-spot=true`).
    pub fn gke_spot(self) -> Self {
        self.label("cloud.google.com/gke-spot", "true")
            .label("cloud.google.com/gke-provisioning", "spot")
    }

    /// The same as an EKS managed-node-group spot node (`eks.amazonaws.com/capacityType=SPOT`).
    pub fn eks_spot(self) -> Self {
        self.label("eks.amazonaws.com/capacityType", "SPOT")
    }

    /// The same as a Karpenter spot node (`karpenter.sh/capacity-type=spot`).
    pub fn karpenter_spot(self) -> Self {
        self.label("karpenter.sh/capacity-type", "spot")
    }

    /// The Node object.
    pub(crate) fn to_object(&self) -> Value {
        let mut labels = self.labels.clone();
        labels.insert("kubernetes.io/hostname".into(), self.name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        let now = crate::store::timestamp();
        let resources = json!({
            "cpu": format!("{}m", self.cpu_millis),
            "memory": self.memory_bytes.to_string(),
            "pods": self.pods.to_string(),
        });
        json!({
            "metadata": { "name": self.name, "labels": labels },
            "spec": {
                "taints": self.taints.iter().map(Taint::to_json).collect::<Vec<_>>(),
                "providerID": format!("onmemos-standin://{}", self.name),
            },
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now, "lastTransitionTime": now
                }],
                "addresses": [
                    { "type": "InternalIP", "address": "127.0.0.1" },
                    { "type": "Hostname", "address": self.name }
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.33.0",
                    "kubeProxyVersion": "v1.33.0",
                    "containerRuntimeVersion": "onmemos-standin://1",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "onmemos stand-in",
                    "kernelVersion": "",
                    "machineID": "", "systemUUID": "", "bootID": ""
                }
            }
        })
    }
}
