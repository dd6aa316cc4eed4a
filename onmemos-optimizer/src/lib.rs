//! # onmemos-optimizer
//!
//! Cost optimization for the clusters that run OnMemOS sessions: engines that take a cluster
//! snapshot (nodes, pods, usage), a pricing catalog and a policy, and return recommendations
//! with their expected savings and risk. Every engine is pure computation — deterministic, fast,
//! and free of I/O — and the [`CostOptimizer`] puts them behind the
//! [`Optimizer`](onmemos_core::ports::Optimizer) port of `onmemos-core`; acting on a cluster is
//! the job of an agent built on the Kubernetes backend.
//!
//! - [`catalog`]: instance types, prices and Spot Advisor bands, with loaders for the public
//!   formats (the AWS Spot Advisor feed, on-demand price tables, GCE price tables);
//! - [`risk`]: the interruption risk model, an ordered logit on the advisor's bands;
//! - [`placement`]: instance types and the spot/on-demand mix for a workload, under a risk
//!   bound and diversity rules;
//! - [`packing`]: bin packing and consolidation, reported against a lower bound;
//! - [`rightsizing`]: VPA-style decaying histograms turned into requests and limits;
//! - [`office_hours`]: schedules (time zone aware) turned into scale-down and wake-up actions.
//!
//! `docs/optimizer.md` describes each algorithm, its parameters and its limits.

pub mod catalog;
pub mod cost;
pub mod office_hours;
pub mod packing;
pub mod placement;
pub mod rightsizing;
pub mod risk;
pub mod synthetic;

pub use cost::CostOptimizer;
pub use onmemos_core::ports::optimizer::{
    ClusterSnapshot, NodeInfo, OptimizationRequest, OptimizerPolicy, PodInfo, Recommendation,
    RecommendationKind,
};
