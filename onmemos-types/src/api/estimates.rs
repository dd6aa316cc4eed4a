//! Request and response bodies of the estimates API.

use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::model::{MicroCredits, Placement, Resources};

/// `POST /v1/estimates`: what would a session cost?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EstimateRequest {
    /// A template (id or name); its resources are used unless `resources` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 128))]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub template: Option<String>,
    /// Explicit resources (instead of, or over, the template's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub resources: Option<Resources>,
    /// How long it would run, in seconds (60 s – 7 days).
    #[validate(range(min = 60, max = 604_800))]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 604_800))]
    pub duration_secs: u64,
    /// Spot or on-demand (default on-demand).
    #[serde(default)]
    pub placement: Placement,
}

/// How far an estimate's history can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Fewer than 5 finished sessions to learn from: the figures are the request's arithmetic.
    Low,
    /// 5–19 sessions.
    Medium,
    /// 20 or more.
    High,
}

/// Where an estimate's percentiles come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HistorySource {
    /// The caller's own finished sessions of this template.
    User,
    /// Everyone's finished sessions of this template.
    Template,
    /// None: no template, or no history yet.
    None,
}

/// A cheaper way to run the same work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alternative {
    /// What changes.
    pub description: String,
    /// Its resources.
    pub resources: Resources,
    /// Its placement.
    pub placement: Placement,
    /// Whether this server's compute can run it.
    pub available: bool,
    /// Its expected cost for the same duration.
    pub expected_cost_micros: MicroCredits,
    /// How much less than the request it costs.
    pub saving_micros: MicroCredits,
}

/// What a session would cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Estimate {
    /// The resources quoted.
    pub resources: Resources,
    /// The placement quoted.
    pub placement: Placement,
    /// Micro-credits per hour.
    pub rate_micros_per_hour: MicroCredits,
    /// The requested duration.
    pub duration_secs: u64,
    /// The cost of the requested duration, exactly as it would be billed.
    pub expected_cost_micros: MicroCredits,
    /// The median cost of such a session, from history (the expected cost without history).
    pub p50_cost_micros: MicroCredits,
    /// The 90th-percentile cost of such a session, from history.
    pub p90_cost_micros: MicroCredits,
    /// Where the percentiles come from.
    pub history: HistorySource,
    /// How many finished sessions they come from.
    pub samples: u32,
    /// How far to trust them.
    pub confidence: Confidence,
    /// Credits the caller has available now.
    pub available_micros: MicroCredits,
    /// Whether those cover the expected cost.
    pub affordable: bool,
    /// Cheaper configurations, cheapest first.
    pub alternatives: Vec<Alternative>,
}

/// `POST /v1/estimates/compare`: several configurations side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    /// 1–20 configurations.
    #[validate(length(min = 1, max = 20), nested)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 20))]
    pub configurations: Vec<EstimateRequest>,
}

/// The estimates of several configurations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comparison {
    /// One per configuration, in the order asked.
    pub estimates: Vec<Estimate>,
    /// The index of the cheapest by expected cost (the first among equals).
    pub cheapest: usize,
}
