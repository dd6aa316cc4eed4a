//! The `Optimizer` port: cluster snapshot in, recommendations out.
//!
//! Engines (spot placement, bin packing, rightsizing, office hours) live in `onmemos-optimizer`;
//! each implements this trait. They are pure computation over the snapshot.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::MicroCredits;

/// What an optimizer engine produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// What an optimizer engine supports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OptimizerCapabilities {
    /// The engine's name.
    pub name: &'static str,
    /// The kinds of recommendation it makes.
    pub kinds: Vec<RecommendationKind>,
}

/// Spot or on-demand capacity of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityType {
    /// Regular capacity.
    OnDemand,
    /// Reclaimable capacity.
    Spot,
}

/// An amount of each schedulable resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceVector {
    /// Thousandths of a vCPU.
    pub cpu_millis: u64,
    /// Bytes of memory.
    pub memory_bytes: u64,
    /// GPUs.
    pub gpus: u32,
    /// Pods.
    pub pods: u32,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub price_per_hour: MicroCredits,
}

/// A pod of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodInfo {
    /// `namespace/name`.
    pub name: String,
    /// The controller that owns it (`Deployment/web`), if any.
    pub owner: Option<String>,
    /// What it requests.
    pub requests: ResourceVector,
    /// The node it runs on, if scheduled.
    pub node: Option<String>,
    /// Whether it is a daemonset pod (moves with its node).
    pub daemonset: bool,
    /// Scheduling priority.
    pub priority: i32,
}

/// A point-in-time view of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Nodes.
    pub nodes: Vec<NodeInfo>,
    /// Pods.
    pub pods: Vec<PodInfo>,
}

/// One suggested change, with what it saves and what it risks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// An optimizer engine.
#[async_trait]
pub trait Optimizer: Send + Sync + Debug + 'static {
    /// What this engine supports.
    fn capabilities(&self) -> OptimizerCapabilities;
    /// Recommendations for the snapshot.
    async fn recommend(&self, snapshot: &ClusterSnapshot) -> Result<Vec<Recommendation>>;
}
