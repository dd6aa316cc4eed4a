use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::id::{SessionId, TemplateId, UserId, WorkspaceId};
use crate::model::MicroCredits;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Accepted, not yet started.
    Pending,
    /// Compute is starting.
    Starting,
    /// Running and billed.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped; `stop_reason` says why.
    Stopped,
    /// Could not start, or failed while running.
    Failed,
}

/// Why a session stopped (machine-readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Its owner stopped it.
    User,
    /// It reached its maximum duration.
    DurationLimit,
    /// It reached its maximum cost.
    CostLimit,
    /// The account ran out of credits.
    CreditsExhausted,
    /// It was idle for longer than its idle timeout.
    IdleTimeout,
    /// Its spot capacity was reclaimed.
    Preempted,
    /// It failed.
    Failed,
    /// Its compute was gone when the server restarted.
    ServerRestartReconciled,
}

/// Spot or on-demand capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Regular capacity.
    OnDemand,
    /// Cheaper capacity that may be reclaimed.
    Spot,
}

/// The limits the monitor enforces on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct SessionLimits {
    /// Maximum run time in seconds (60 s – 7 days).
    #[validate(range(min = 60, max = 604_800))]
    pub max_duration_secs: u64,
    /// Maximum cost in micro-credits.
    #[validate(range(min = 0))]
    pub max_cost_micros: MicroCredits,
    /// Stop after this many seconds without activity (60 s – 7 days).
    #[validate(range(min = 60, max = 604_800))]
    pub idle_timeout_secs: u64,
}

impl Default for SessionLimits {
    /// 24 hours, 100 credits, 30 minutes idle.
    fn default() -> Self {
        Self {
            max_duration_secs: 24 * 3600,
            max_cost_micros: 100 * crate::model::MICROS_PER_CREDIT,
            idle_timeout_secs: 30 * 60,
        }
    }
}

impl SessionLimits {
    /// `Ok` if every limit is at most the one in `max`; the error names the field, under
    /// `prefix` (e.g. `default_limits`).
    pub fn check_within(&self, max: &SessionLimits, prefix: &str) -> crate::Result<()> {
        let over = |field: &str, allowed: String| {
            Err(crate::Error::invalid(
                format!("{prefix}.{field}"),
                format!("{prefix}.{field} may be at most {allowed}"),
            ))
        };
        if self.max_duration_secs > max.max_duration_secs {
            return over(
                "max_duration_secs",
                format!("{} seconds", max.max_duration_secs),
            );
        }
        if self.max_cost_micros > max.max_cost_micros {
            return over(
                "max_cost_micros",
                format!("{} micro-credits", max.max_cost_micros),
            );
        }
        if self.idle_timeout_secs > max.idle_timeout_secs {
            return over(
                "idle_timeout_secs",
                format!("{} seconds", max.idle_timeout_secs),
            );
        }
        Ok(())
    }
}

/// A running environment of a workspace, started from a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// The workspace it runs in.
    pub workspace_id: WorkspaceId,
    /// The owner (the workspace's owner).
    pub owner_id: UserId,
    /// The template it was started from.
    pub template_id: TemplateId,
    /// Where it is in its life.
    pub status: SessionStatus,
    /// The limits it runs under.
    pub limits: SessionLimits,
    /// Spot or on-demand.
    pub placement: Placement,
    /// Cost so far in micro-credits.
    pub cost_micros: MicroCredits,
    /// Why it stopped, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
}
