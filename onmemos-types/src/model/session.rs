use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::id::{SessionId, TemplateId, UserId, WorkspaceId};
use crate::model::{MicroCredits, Resources, TransferId};

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Its workspace's files, written by the session itself, went over the storage quota.
    StorageQuota,
}

/// Spot or on-demand capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Regular capacity.
    #[default]
    OnDemand,
    /// Cheaper capacity that may be reclaimed.
    Spot,
}

/// `as_str` and `parse` for a unit enum, spelled as on the wire.
macro_rules! wire_names {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire (and database) spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
            /// Parses the wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

wire_names!(SessionStatus {
    Pending => "pending", Starting => "starting", Running => "running",
    Stopping => "stopping", Stopped => "stopped", Failed => "failed",
});
wire_names!(StopReason {
    User => "user", DurationLimit => "duration_limit", CostLimit => "cost_limit",
    CreditsExhausted => "credits_exhausted", IdleTimeout => "idle_timeout",
    Preempted => "preempted", Failed => "failed",
    ServerRestartReconciled => "server_restart_reconciled", StorageQuota => "storage_quota",
});
wire_names!(Placement { OnDemand => "on_demand", Spot => "spot" });

/// The limits the monitor enforces on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionLimits {
    /// Maximum run time in seconds (60 s – 7 days).
    #[validate(range(min = 60, max = 604_800))]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 604_800))]
    pub max_duration_secs: u64,
    /// Maximum cost in micro-credits.
    #[validate(range(min = 0))]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub max_cost_micros: MicroCredits,
    /// Stop after this many seconds without activity (60 s – 7 days).
    #[validate(range(min = 60, max = 604_800))]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 604_800))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The resources it runs with (the template's).
    pub resources: Resources,
    /// What it costs per hour, in micro-credits (fixed when it was created).
    pub rate_micros_per_hour: MicroCredits,
    /// Cost so far in micro-credits, as charged to the ledger.
    pub cost_micros: MicroCredits,
    /// Why it stopped, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// What went wrong, for a `failed` session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started running (billing starts here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// The last shell input or output, exec or API call on it (written at most once a second).
    pub last_activity_at: DateTime<Utc>,
}

impl Session {
    /// Whether it has ended (`stopped` or `failed`).
    pub fn is_finished(&self) -> bool {
        matches!(self.status, SessionStatus::Stopped | SessionStatus::Failed)
    }
}

/// The billing state of a session, kept beside it in the database and never shown by the API.
///
/// Tick `k` settles hold `k - 1` and places hold `k`; the transfer ids are derived from the
/// session id and `k`, so a tick repeated by a second monitor is a replay, never a second charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session as the API shows it.
    pub session: Session,
    /// The server node whose compute runs it.
    pub node: String,
    /// Bumped by every write; writes are conditional on the version read (optimistic locking).
    pub version: u64,
    /// The number of the current hold (0 at start).
    pub tick: u64,
    /// The current hold, if one is open.
    pub hold: Option<TransferId>,
    /// Billing is paid up to here: `started_at + billed_ms`.
    pub billed_ms: i64,
    /// The open hold covers running time up to here.
    pub covered_until: Option<DateTime<Utc>>,
    /// When the monitor should next look at it.
    pub next_check_at: Option<DateTime<Utc>>,
    /// Limits already warned about (bits of [`Warning`]).
    pub warned: u32,
}

/// A warning the monitor gives once before a limit stops a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Warning {
    /// The maximum duration is near.
    DurationLimit,
    /// The maximum cost is near.
    CostLimit,
    /// The idle timeout is near.
    IdleTimeout,
    /// The credits will not cover the next billing window.
    CreditsLow,
    /// The session's spot capacity is being taken back (the provider announced it).
    Interruption,
}

impl Warning {
    /// This warning's bit in [`SessionRecord::warned`].
    pub fn bit(self) -> u32 {
        match self {
            Self::DurationLimit => 1,
            Self::CostLimit => 2,
            Self::IdleTimeout => 4,
            Self::CreditsLow => 8,
            Self::Interruption => 16,
        }
    }
}

/// What happened to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEventKind {
    /// Accepted, with its quote.
    Created {
        /// The hourly rate in micro-credits.
        rate_micros_per_hour: MicroCredits,
    },
    /// Compute is up and billing started.
    Started,
    /// A tick charged the time used and extended the hold.
    Charged {
        /// The tick's number.
        tick: u64,
        /// Charged by this tick.
        amount_micros: MicroCredits,
        /// The session's cost so far.
        cost_micros: MicroCredits,
    },
    /// A limit is near.
    Warning {
        /// Which.
        warning: Warning,
        /// Seconds until it stops the session, as far as can be told now.
        seconds_left: i64,
    },
    /// It stopped.
    Stopped {
        /// Why.
        reason: StopReason,
        /// The final cost.
        cost_micros: MicroCredits,
    },
    /// It could not start, or broke.
    Failed {
        /// Why.
        error: String,
    },
}

impl SessionEventKind {
    /// The wire name of the kind (the `type` field): `created`, `started`, `charged`,
    /// `warning`, `stopped`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Started => "started",
            Self::Charged { .. } => "charged",
            Self::Warning { .. } => "warning",
            Self::Stopped { .. } => "stopped",
            Self::Failed { .. } => "failed",
        }
    }

    /// Whether this event ends the session's trail.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Stopped { .. } | Self::Failed { .. })
    }
}

/// One entry of a session's event trail (`GET /v1/sessions/{id}/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionEvent {
    /// Position in the database's event order (a cursor: later events have larger ones).
    pub seq: u64,
    /// The session.
    pub session_id: SessionId,
    /// When.
    pub at: DateTime<Utc>,
    /// What, and its figures.
    #[serde(flatten)]
    pub kind: SessionEventKind,
    /// A sentence for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kind_names_are_their_wire_tags() {
        let kinds = [
            SessionEventKind::Created {
                rate_micros_per_hour: 1,
            },
            SessionEventKind::Started,
            SessionEventKind::Charged {
                tick: 1,
                amount_micros: 1,
                cost_micros: 1,
            },
            SessionEventKind::Warning {
                warning: Warning::CostLimit,
                seconds_left: 1,
            },
            SessionEventKind::Stopped {
                reason: StopReason::User,
                cost_micros: 1,
            },
            SessionEventKind::Failed { error: "x".into() },
        ];
        for kind in kinds {
            let wire = serde_json::to_value(&kind).unwrap_or_default();
            assert_eq!(wire["type"], kind.name(), "{kind:?}");
        }
    }
}
