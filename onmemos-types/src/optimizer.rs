//! What the optimizer reads and answers: a cluster snapshot in, recommendations out.
//!
//! The `Optimizer` port over these types is in `onmemos_core::ports::optimizer`; its engines
//! live in `onmemos-optimizer`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::MicroCredits;

/// What an optimizer engine produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecommendationKind {
    /// Move a workload to spot or on-demand capacity, or change instance types.
    SpotPlacement,
    /// Drain and remove nodes; move pods to fewer, cheaper nodes.
    Consolidation,
    /// Change a workload's requests and limits.
    Rightsizing,
    /// Scale a workload down or up on a schedule.
    OfficeHours,
}

/// Spot or on-demand capacity of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CapacityType {
    /// Regular capacity.
    OnDemand,
    /// Reclaimable capacity.
    Spot,
}

/// An amount of each schedulable resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResourceVector {
    /// Thousandths of a vCPU (at most [`MAX_CPU_MILLIS`]).
    #[cfg_attr(feature = "openapi", schema(maximum = 1_000_000_000))]
    pub cpu_millis: u64,
    /// Bytes of memory (at most [`MAX_MEMORY_BYTES`], 16 TiB).
    #[cfg_attr(feature = "openapi", schema(maximum = 17_592_186_044_416_u64))]
    pub memory_bytes: u64,
    /// GPUs (at most [`MAX_GPUS`]).
    #[cfg_attr(feature = "openapi", schema(maximum = 10_000))]
    pub gpus: u32,
    /// Pods (at most [`MAX_POD_SLOTS`]).
    #[cfg_attr(feature = "openapi", schema(maximum = 100_000))]
    pub pods: u32,
}

/// The most vCPU thousandths one node, pod or workload replica may have: a million cores.
pub const MAX_CPU_MILLIS: u64 = 1_000_000_000;
/// The most memory one node, pod or workload replica may have: 16 TiB.
pub const MAX_MEMORY_BYTES: u64 = 1 << 44;
/// The most GPUs one node, pod or workload replica may have.
pub const MAX_GPUS: u32 = 10_000;
/// The most pod slots one node may have.
pub const MAX_POD_SLOTS: u32 = 100_000;
/// The highest hourly price of one node or offering: a million credits.
pub const MAX_NODE_PRICE_PER_HOUR: MicroCredits = 1_000_000_000_000;
/// The most nodes, pods, offerings, workloads or budgets one snapshot may list.
pub const MAX_SNAPSHOT_ITEMS: usize = 200_000;
/// The most replicas of one workload.
pub const MAX_REPLICAS: u32 = 100_000;

impl ResourceVector {
    /// Checks each figure against its bound, naming the field under `at`.
    pub fn validate(&self, at: &str) -> crate::Result<()> {
        let over = |field: &str, max: String| {
            Err(crate::Error::invalid(
                format!("{at}.{field}"),
                format!("{at}.{field} may be at most {max}"),
            ))
        };
        if self.cpu_millis > MAX_CPU_MILLIS {
            return over("cpu_millis", MAX_CPU_MILLIS.to_string());
        }
        if self.memory_bytes > MAX_MEMORY_BYTES {
            return over("memory_bytes", MAX_MEMORY_BYTES.to_string());
        }
        if self.gpus > MAX_GPUS {
            return over("gpus", MAX_GPUS.to_string());
        }
        if self.pods > MAX_POD_SLOTS {
            return over("pods", MAX_POD_SLOTS.to_string());
        }
        Ok(())
    }
}

/// A node's or offering's price: from 0 to [`MAX_NODE_PRICE_PER_HOUR`].
fn check_price(price: MicroCredits, at: &str) -> crate::Result<()> {
    if (0..=MAX_NODE_PRICE_PER_HOUR).contains(&price) {
        Ok(())
    } else {
        Err(crate::Error::invalid(
            format!("{at}.price_per_hour"),
            format!("{at}.price_per_hour must be between 0 and {MAX_NODE_PRICE_PER_HOUR}"),
        ))
    }
}

/// How a taint repels pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TaintEffect {
    /// New pods that do not tolerate the taint are not scheduled on the node.
    NoSchedule,
    /// The scheduler avoids the node for such pods but may still use it.
    PreferNoSchedule,
    /// Such pods are not scheduled, and running ones are evicted.
    NoExecute,
}

/// A node taint (`key=value:Effect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value, if any.
    #[serde(default)]
    pub value: Option<String>,
    /// Its effect.
    pub effect: TaintEffect,
}

/// A pod toleration, matched as Kubernetes matches them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Toleration {
    /// The key it tolerates; `None` tolerates every taint (operator `Exists` with no key).
    #[serde(default)]
    pub key: Option<String>,
    /// The value it requires; `None` tolerates any value (operator `Exists`).
    #[serde(default)]
    pub value: Option<String>,
    /// The effect it tolerates; `None` tolerates every effect.
    #[serde(default)]
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether this toleration tolerates `taint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        let key = self.key.as_deref().is_none_or(|k| k == taint.key);
        let value = self.value.is_none() || self.value == taint.value;
        let effect = self.effect.is_none_or(|e| e == taint.effect);
        key && value && effect
    }
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Instance or machine type.
    pub instance_type: String,
    /// Availability zone.
    pub zone: String,
    /// Spot or on-demand.
    pub capacity_type: CapacityType,
    /// What pods can use.
    pub allocatable: ResourceVector,
    /// Price per hour in micro-credits.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 1_000_000_000_000_i64)
    )]
    pub price_per_hour: MicroCredits,
    /// Node labels, matched by pods' node selectors.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    #[serde(default)]
    pub taints: Vec<Taint>,
}

/// A container's resource usage: samples at a fixed step from `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UsageSeries {
    /// Time of the first sample.
    pub start: DateTime<Utc>,
    /// Seconds between samples.
    pub step_secs: u32,
    /// CPU used in each step, in thousandths of a vCPU.
    pub cpu_millis: Vec<u32>,
    /// Memory working set at each step, in bytes.
    pub memory_bytes: Vec<u64>,
    /// Out-of-memory kills seen over the series.
    #[serde(default)]
    pub oom_kills: u32,
}

/// A pod of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PodInfo {
    /// `namespace/name`.
    pub name: String,
    /// The controller that owns it (`Deployment/web`), if any.
    pub owner: Option<String>,
    /// What it requests.
    pub requests: ResourceVector,
    /// Its limits, if set.
    #[serde(default)]
    pub limits: Option<ResourceVector>,
    /// The node it runs on, if scheduled.
    pub node: Option<String>,
    /// Whether it is a daemonset pod (moves with its node).
    pub daemonset: bool,
    /// Scheduling priority.
    pub priority: i32,
    /// Labels a node must carry for the pod to run there.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Taints it tolerates.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Its usage history, for rightsizing.
    #[serde(default)]
    pub usage: Option<UsageSeries>,
}

impl PodInfo {
    /// Whether the pod may run on `node` by its node selector and the node's taints
    /// (`PreferNoSchedule` taints do not forbid).
    pub fn can_run_on(&self, node: &NodeInfo) -> bool {
        self.can_run_with(&node.labels, &node.taints)
    }

    /// Whether the pod may run on a node with these labels and taints (an existing node or
    /// one that may be bought).
    pub fn can_run_with(&self, labels: &BTreeMap<String, String>, taints: &[Taint]) -> bool {
        admits(&self.node_selector, &self.tolerations, labels, taints)
    }
}

/// Whether a node with `labels` and `taints` admits a pod with `node_selector` and
/// `tolerations` (`PreferNoSchedule` taints do not forbid).
pub fn admits(
    node_selector: &BTreeMap<String, String>,
    tolerations: &[Toleration],
    labels: &BTreeMap<String, String>,
    taints: &[Taint],
) -> bool {
    node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        && taints.iter().all(|taint| {
            taint.effect == TaintEffect::PreferNoSchedule
                || tolerations.iter().any(|t| t.tolerates(taint))
        })
}

/// At most `max_unavailable` pods of `owner` may be evicted at once (a PodDisruptionBudget).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DisruptionBudget {
    /// Its name.
    pub name: String,
    /// The controller whose pods it protects (`Deployment/web`).
    pub owner: String,
    /// Pods that may be evicted at once.
    pub max_unavailable: u32,
}

/// A kind of node that may be bought: a type in a zone at a price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeOffering {
    /// Instance or machine type.
    pub instance_type: String,
    /// Availability zone.
    pub zone: String,
    /// Spot or on-demand.
    pub capacity_type: CapacityType,
    /// What pods can use on such a node.
    pub allocatable: ResourceVector,
    /// Price per hour in micro-credits.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 1_000_000_000_000_i64)
    )]
    pub price_per_hour: MicroCredits,
    /// For spot offerings: the Spot Advisor interruption band (0 `<5%` … 4 `>20%`), if known.
    #[serde(default)]
    pub interruption_band: Option<u8>,
    /// Labels such a node carries.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints such a node carries.
    #[serde(default)]
    pub taints: Vec<Taint>,
}

/// A workload to place on spot or on-demand capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkloadInfo {
    /// The controller (`Deployment/web`).
    pub name: String,
    /// Replicas it runs (at most [`MAX_REPLICAS`]).
    #[cfg_attr(feature = "openapi", schema(maximum = 100_000))]
    pub replicas: u32,
    /// What each replica requests.
    pub requests: ResourceVector,
    /// Whether it tolerates interruptions at all (stateless, checkpointed…).
    #[serde(default = "default_true")]
    pub interruptible: bool,
    /// Its own bound on a pool's monthly interruption probability, tighter than the policy's.
    #[serde(default)]
    pub max_interruption_risk: Option<f64>,
    /// Labels a node must carry for its replicas.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Taints its replicas tolerate.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
}

impl WorkloadInfo {
    /// Whether its replicas may run on nodes of `offering` by selector and taints.
    pub fn admitted_by(&self, offering: &NodeOffering) -> bool {
        admits(
            &self.node_selector,
            &self.tolerations,
            &offering.labels,
            &offering.taints,
        )
    }
}

fn default_true() -> bool {
    true
}

/// A point-in-time view of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClusterSnapshot {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The cloud region (`us-east-1`), if known.
    #[serde(default)]
    pub region: Option<String>,
    /// Nodes.
    pub nodes: Vec<NodeInfo>,
    /// Pods.
    pub pods: Vec<PodInfo>,
    /// Pod disruption budgets.
    #[serde(default)]
    pub disruption_budgets: Vec<DisruptionBudget>,
    /// Node kinds that may be bought; empty means the optimizer's own catalog for `region`.
    #[serde(default)]
    pub offerings: Vec<NodeOffering>,
    /// Workloads to place; empty means one per pod owner, from the pods.
    #[serde(default)]
    pub workloads: Vec<WorkloadInfo>,
}

impl ClusterSnapshot {
    /// Checks the figures an optimizer adds up — prices, resources, counts — against their
    /// bounds, so no sum over a snapshot can overflow; the error names the field
    /// (`snapshot.nodes[3].price_per_hour`).
    pub fn validate(&self) -> crate::Result<()> {
        let lists = [
            ("nodes", self.nodes.len()),
            ("pods", self.pods.len()),
            ("offerings", self.offerings.len()),
            ("workloads", self.workloads.len()),
            ("disruption_budgets", self.disruption_budgets.len()),
        ];
        for (name, len) in lists {
            if len > MAX_SNAPSHOT_ITEMS {
                return Err(crate::Error::invalid(
                    format!("snapshot.{name}"),
                    format!("snapshot.{name} may list at most {MAX_SNAPSHOT_ITEMS} items"),
                ));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let at = format!("snapshot.nodes[{i}]");
            n.allocatable.validate(&format!("{at}.allocatable"))?;
            check_price(n.price_per_hour, &at)?;
        }
        for (i, o) in self.offerings.iter().enumerate() {
            let at = format!("snapshot.offerings[{i}]");
            o.allocatable.validate(&format!("{at}.allocatable"))?;
            check_price(o.price_per_hour, &at)?;
        }
        for (i, p) in self.pods.iter().enumerate() {
            let at = format!("snapshot.pods[{i}]");
            p.requests.validate(&format!("{at}.requests"))?;
            if let Some(limits) = &p.limits {
                limits.validate(&format!("{at}.limits"))?;
            }
        }
        for (i, w) in self.workloads.iter().enumerate() {
            let at = format!("snapshot.workloads[{i}]");
            w.requests.validate(&format!("{at}.requests"))?;
            if w.replicas > MAX_REPLICAS {
                return Err(crate::Error::invalid(
                    format!("{at}.replicas"),
                    format!("{at}.replicas may be at most {MAX_REPLICAS}"),
                ));
            }
        }
        Ok(())
    }

    /// A snapshot of `pods` alone, taken at `taken_at`: no nodes, budgets, offerings or
    /// workloads (enough for rightsizing).
    pub fn of_pods(taken_at: DateTime<Utc>, pods: Vec<PodInfo>) -> Self {
        Self {
            taken_at,
            region: None,
            nodes: Vec::new(),
            pods,
            disruption_budgets: Vec::new(),
            offerings: Vec::new(),
            workloads: Vec::new(),
        }
    }
}

/// An office-hours schedule: the workloads run on `weekdays` from `wake` to `sleep`, local time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OfficeHoursSchedule {
    /// Its name.
    pub name: String,
    /// The controllers it scales (`Deployment/web`).
    pub workloads: Vec<String>,
    /// Days it is awake (`mon` … `sun`).
    pub weekdays: Vec<String>,
    /// Local wake-up time, `HH:MM`.
    pub wake: String,
    /// Local sleep time, `HH:MM`; before `wake` means the awake span crosses midnight.
    pub sleep: String,
    /// IANA time zone (`Europe/Paris`).
    pub time_zone: String,
    /// Local dates it stays asleep all day (`2026-12-25`).
    #[serde(default)]
    pub exclusions: Vec<String>,
    /// Replicas while asleep.
    #[serde(default)]
    pub sleep_replicas: u32,
}

/// The bounds an optimizer works within.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerPolicy {
    /// Largest share of a workload's replicas on spot capacity, in [0, 1].
    pub max_spot_share: f64,
    /// Fewest distinct instance types a spot workload is spread over.
    pub min_instance_types: u32,
    /// Fewest distinct zones a spot workload is spread over.
    pub min_zones: u32,
    /// Largest monthly interruption probability of a spot pool chosen, in [0, 1].
    pub max_interruption_risk: f64,
    /// Most nodes one consolidation may drain.
    pub max_drained_nodes: u32,
    /// Office-hours schedules.
    pub schedules: Vec<OfficeHoursSchedule>,
}

impl Default for OptimizerPolicy {
    fn default() -> Self {
        Self {
            max_spot_share: 0.7,
            min_instance_types: 3,
            min_zones: 2,
            max_interruption_risk: 0.15,
            max_drained_nodes: 10,
            schedules: Vec::new(),
        }
    }
}

/// What an optimizer is asked: a snapshot, and the policy to respect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OptimizationRequest {
    /// The cluster.
    pub snapshot: ClusterSnapshot,
    /// The bounds.
    #[serde(default)]
    pub policy: OptimizerPolicy,
}

/// One suggested change, with what it saves and what it risks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    /// The kind of change.
    pub kind: RecommendationKind,
    /// What it applies to (a node, a workload).
    pub target: String,
    /// What to do, for humans.
    pub summary: String,
    /// Expected saving per 30-day month, in micro-credits (may be negative).
    pub monthly_savings: MicroCredits,
    /// Probability in [0, 1] that the change causes a disruption.
    pub risk: f64,
    /// Why: the figures behind it and the alternatives that lost.
    #[serde(default)]
    pub details: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_with_figures_past_their_bounds_are_refused_by_field() {
        let node = |price| NodeInfo {
            name: "n".into(),
            instance_type: "m5.large".into(),
            zone: "z".into(),
            capacity_type: CapacityType::OnDemand,
            allocatable: ResourceVector {
                cpu_millis: 2000,
                memory_bytes: 8 << 30,
                gpus: 0,
                pods: 110,
            },
            price_per_hour: price,
            labels: Default::default(),
            taints: Vec::new(),
        };
        let mut snapshot = ClusterSnapshot::of_pods(chrono::Utc::now(), Vec::new());
        snapshot.nodes = vec![node(96_000)];
        assert!(snapshot.validate().is_ok());
        for price in [-1, MAX_NODE_PRICE_PER_HOUR + 1, i64::MAX] {
            snapshot.nodes = vec![node(price)];
            let e = snapshot
                .validate()
                .err()
                .unwrap_or_else(|| panic!("{price} passed"));
            assert_eq!(e.field(), Some("snapshot.nodes[0].price_per_hour"));
        }
        snapshot.nodes = vec![node(1)];
        snapshot.nodes[0].allocatable.memory_bytes = MAX_MEMORY_BYTES + 1;
        let e = snapshot
            .validate()
            .err()
            .unwrap_or_else(|| panic!("memory passed"));
        assert_eq!(
            e.field(),
            Some("snapshot.nodes[0].allocatable.memory_bytes")
        );
    }
}
