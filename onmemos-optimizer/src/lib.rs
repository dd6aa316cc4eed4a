//! # onmemos-optimizer
//!
//! Cost optimization for the clusters that run OnMemOS sessions: engines that take a cluster
//! snapshot (nodes, pods, usage), a pricing catalog and a policy, and return recommendations
//! with their expected savings and risk. Every engine is pure computation — deterministic, fast,
//! and free of I/O — and implements the [`Optimizer`](onmemos_core::ports::Optimizer) port of
//! `onmemos-core`; acting on a cluster is the job of an agent built on the Kubernetes backend.
//!
//! The engines, as they land:
//!
//! - **spot placement**: instance types and the spot/on-demand mix that maximise expected
//!   savings under a risk bound, spread over several types and zones, with an interruption
//!   model trained on public Spot Advisor data;
//! - **bin packing / consolidation**: the cheapest multi-resource placement, the nodes to drain,
//!   within PDBs and disruption budgets, reported against a lower bound;
//! - **rightsizing**: VPA-style decaying histograms turned into requests and limits;
//! - **office hours**: schedules (time zone aware) turned into scale-down and wake-up actions.
//!
//! This crate has no engine yet; its place in the workspace is fixed so the server and the
//! client can grow their optimizer endpoints against it.

pub use onmemos_core::ports::optimizer::{
    ClusterSnapshot, NodeInfo, PodInfo, Recommendation, RecommendationKind,
};
