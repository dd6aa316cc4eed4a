//! The `Optimizer` port: cluster snapshot in, recommendations out.
//!
//! Engines (spot placement, bin packing, rightsizing, office hours) live in `onmemos-optimizer`;
//! each implements this trait. They are pure computation over the snapshot, whose types
//! ([`onmemos_types::optimizer`]) are re-exported here.

use std::fmt::Debug;

use async_trait::async_trait;

pub use onmemos_types::optimizer::*;

use crate::error::Result;

/// What an optimizer engine supports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OptimizerCapabilities {
    /// The engine's name.
    pub name: &'static str,
    /// The kinds of recommendation it makes.
    pub kinds: Vec<RecommendationKind>,
}

impl OptimizerCapabilities {
    /// An engine named `name` making `kinds` of recommendation.
    pub fn new(name: &'static str, kinds: Vec<RecommendationKind>) -> Self {
        Self { name, kinds }
    }
}

/// An optimizer engine.
#[async_trait]
pub trait Optimizer: Send + Sync + Debug + 'static {
    /// What this engine supports.
    fn capabilities(&self) -> OptimizerCapabilities;
    /// Recommendations for the snapshot.
    async fn recommend(&self, request: &OptimizationRequest) -> Result<Vec<Recommendation>>;
}
