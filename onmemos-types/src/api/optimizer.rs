//! The optimizer's response body.

use serde::{Deserialize, Serialize};

use crate::model::MicroCredits;
use crate::optimizer::{Recommendation, RecommendationKind};

/// The recommendations for a snapshot, with their totals per kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OptimizationReport {
    /// Every recommendation, grouped by kind, best saving first within a kind.
    pub recommendations: Vec<Recommendation>,
    /// Totals per kind, in the order kinds first appear. Kinds overlap (a rightsized workload
    /// also lets the consolidation free nodes): add savings within a kind, not across kinds.
    pub totals: Vec<KindTotal>,
}

/// The recommendations of one kind, summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KindTotal {
    /// The kind.
    pub kind: RecommendationKind,
    /// How many recommendations of it.
    pub count: u32,
    /// Their monthly savings, in micro-credits.
    pub monthly_savings: MicroCredits,
}

impl OptimizationReport {
    /// A report of `recommendations` with their totals.
    pub fn new(recommendations: Vec<Recommendation>) -> Self {
        let mut totals: Vec<KindTotal> = Vec::new();
        for r in &recommendations {
            match totals.iter_mut().find(|t| t.kind == r.kind) {
                Some(t) => {
                    t.count += 1;
                    t.monthly_savings += r.monthly_savings;
                }
                None => totals.push(KindTotal {
                    kind: r.kind,
                    count: 1,
                    monthly_savings: r.monthly_savings,
                }),
            }
        }
        Self {
            recommendations,
            totals,
        }
    }
}
