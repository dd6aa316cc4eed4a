//! The resources the stand-in serves, with what discovery says of each.

/// One resource type: where it lives in the API and what it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The version (`v1`).
    pub version: &'static str,
    /// The plural name in paths (`pods`).
    pub plural: &'static str,
    /// The singular name (`pod`).
    pub singular: &'static str,
    /// The kind (`Pod`).
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for kubectl (`po`).
    pub short_names: &'static [&'static str],
    /// Subresources (`status`, `scale`, `eviction`, `exec`, `attach`, `log`).
    pub subresources: &'static [&'static str],
    /// Whether the object has a `spec` whose changes bump `metadata.generation`.
    pub has_spec: bool,
    /// Whether only reads are served (metrics).
    pub read_only: bool,
}

impl ResourceType {
    /// `pods`, or `deployments.apps`: how the apiserver names it in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `v1`, or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether `sub` is one of its subresources.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// The verbs discovery lists.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.read_only {
            &["get", "list"]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
}

macro_rules! resource {
    ($group:literal, $version:literal, $plural:literal, $singular:literal, $kind:literal,
     namespaced: $ns:literal, short: [$($short:literal),*], sub: [$($sub:literal),*],
     spec: $spec:literal $(, read_only: $ro:literal)?) => {
        ResourceType {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: &[$($short),*],
            subresources: &[$($sub),*],
            has_spec: $spec,
            read_only: false $(|| $ro)?,
        }
    };
}

/// Every resource the stand-in serves.
pub static RESOURCES: &[ResourceType] = &[
    resource!("", "v1", "namespaces", "namespace", "Namespace", namespaced: false, short: ["ns"], sub: ["status"], spec: false),
    resource!("", "v1", "nodes", "node", "Node", namespaced: false, short: ["no"], sub: ["status"], spec: true),
    resource!("", "v1", "pods", "pod", "Pod", namespaced: true, short: ["po"], sub: ["status", "log", "binding", "eviction", "exec", "attach"], spec: false),
    resource!("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", namespaced: true, short: ["sa"], sub: [], spec: false),
    resource!("", "v1", "events", "event", "Event", namespaced: true, short: ["ev"], sub: [], spec: false),
    resource!("", "v1", "configmaps", "configmap", "ConfigMap", namespaced: true, short: ["cm"], sub: [], spec: false),
    resource!("", "v1", "secrets", "secret", "Secret", namespaced: true, short: [], sub: [], spec: false),
    resource!("", "v1", "services", "service", "Service", namespaced: true, short: ["svc"], sub: ["status"], spec: false),
    resource!("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", namespaced: true, short: ["quota"], sub: ["status"], spec: false),
    resource!("", "v1", "limitranges", "limitrange", "LimitRange", namespaced: true, short: ["limits"], sub: [], spec: false),
    resource!("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", namespaced: false, short: ["pv"], sub: ["status"], spec: false),
    resource!("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", namespaced: true, short: ["pvc"], sub: ["status"], spec: false),
    resource!("apps", "v1", "deployments", "deployment", "Deployment", namespaced: true, short: ["deploy"], sub: ["status", "scale"], spec: true),
    resource!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", namespaced: true, short: ["rs"], sub: ["status", "scale"], spec: true),
    resource!("apps", "v1", "statefulsets", "statefulset", "StatefulSet", namespaced: true, short: ["sts"], sub: ["status", "scale"], spec: true),
    resource!("apps", "v1", "daemonsets", "daemonset", "DaemonSet", namespaced: true, short: ["ds"], sub: ["status"], spec: true),
    resource!("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", namespaced: true, short: ["pdb"], sub: ["status"], spec: true),
    resource!("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", namespaced: true, short: ["netpol"], sub: [], spec: true),
    resource!("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", namespaced: false, short: [], sub: [], spec: false),
    resource!("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", namespaced: false, short: [], sub: [], spec: false),
    resource!("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", namespaced: true, short: [], sub: [], spec: false),
    resource!("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", namespaced: true, short: [], sub: [], spec: false),
    resource!("coordination.k8s.io", "v1", "leases", "lease", "Lease", namespaced: true, short: [], sub: [], spec: false),
    resource!("metrics.k8s.io", "v1beta1", "pods", "", "PodMetrics", namespaced: true, short: [], sub: [], spec: false, read_only: true),
    resource!("metrics.k8s.io", "v1beta1", "nodes", "", "NodeMetrics", namespaced: false, short: [], sub: [], spec: false, read_only: true),
];

/// The resource `plural` of `group`/`version`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The groups other than the core one, in discovery order, with their one version each.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out
}
