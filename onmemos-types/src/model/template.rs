use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::id::{TemplateId, UserId};
use crate::model::SessionLimits;

/// What a template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum TemplateCategory {
    /// Python development.
    Python,
    /// Node.js development.
    Nodejs,
    /// Notebooks and data analysis.
    DataScience,
    /// Machine learning.
    Ml,
    /// Anything else (custom templates).
    Custom,
}

impl TemplateCategory {
    /// The stored and wire name (`data-science`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Nodejs => "nodejs",
            Self::DataScience => "data-science",
            Self::Ml => "ml",
            Self::Custom => "custom",
        }
    }

    /// The category of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Python,
            Self::Nodejs,
            Self::DataScience,
            Self::Ml,
            Self::Custom,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// The compute resources of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU in thousandths of a vCPU (100–64000).
    #[validate(range(min = 100, max = 64_000))]
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 64_000))]
    pub cpu_millis: u32,
    /// Memory in MiB (128–262144).
    #[validate(range(min = 128, max = 262_144))]
    #[cfg_attr(feature = "openapi", schema(minimum = 128, maximum = 262_144))]
    pub memory_mib: u32,
    /// Whole GPUs (0–8).
    #[serde(default)]
    #[validate(range(max = 8))]
    #[cfg_attr(feature = "openapi", schema(maximum = 8))]
    pub gpu: u32,
    /// Ephemeral disk in GiB (1–1024).
    #[validate(range(min = 1, max = 1024))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1024))]
    pub disk_gib: u32,
}

/// A recipe for sessions: image, resources, env vars, default limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    /// The template's id.
    pub id: TemplateId,
    /// A DNS-label name; built-in names are reserved.
    pub name: String,
    /// The owner of a custom template; absent for built-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<UserId>,
    /// Whether this is a built-in template (read-only, visible to everyone).
    pub builtin: bool,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the template is for.
    pub category: TemplateCategory,
    /// The container image (Kubernetes) or a descriptive name (local compute).
    pub image: String,
    /// The resources of each session.
    pub resources: Resources,
    /// Environment variables of each session.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Limits a session gets unless it asks for others.
    pub default_limits: SessionLimits,
    /// Free-form tags for filtering.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Typical start-up time in milliseconds.
    pub expected_start_ms: u32,
    /// How many sessions were started from the template.
    pub usage_count: u64,
    /// When the template was created.
    pub created_at: DateTime<Utc>,
}
