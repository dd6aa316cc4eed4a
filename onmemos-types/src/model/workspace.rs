use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{UserId, WorkspaceId};

/// A named, isolated environment of one user: its storage namespace, its env vars, its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    /// The workspace's id.
    pub id: WorkspaceId,
    /// The owner.
    pub owner_id: UserId,
    /// A DNS-label name, unique among the owner's workspaces.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Environment variables every session of the workspace gets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// When the workspace was created.
    pub created_at: DateTime<Utc>,
    /// When the workspace was last changed.
    pub updated_at: DateTime<Utc>,
}
