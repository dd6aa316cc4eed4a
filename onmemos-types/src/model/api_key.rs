use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{ApiKeyId, UserId};

/// A permission an API key carries. Keys are least-privilege: a key can only create keys whose
/// scopes are a subset of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// Manage users and grant credits (only for admin users).
    #[serde(rename = "admin")]
    Admin,
    /// Read workspaces.
    #[serde(rename = "workspaces:read")]
    WorkspacesRead,
    /// Create, update and delete workspaces.
    #[serde(rename = "workspaces:write")]
    WorkspacesWrite,
    /// Read templates.
    #[serde(rename = "templates:read")]
    TemplatesRead,
    /// Create and delete custom templates.
    #[serde(rename = "templates:write")]
    TemplatesWrite,
    /// List API keys.
    #[serde(rename = "keys:read")]
    KeysRead,
    /// Create and revoke API keys.
    #[serde(rename = "keys:write")]
    KeysWrite,
    /// Read sessions and their events.
    #[serde(rename = "sessions:read")]
    SessionsRead,
    /// Create, stop and exec into sessions; open shells.
    #[serde(rename = "sessions:write")]
    SessionsWrite,
    /// Read workspace files.
    #[serde(rename = "storage:read")]
    StorageRead,
    /// Write and delete workspace files.
    #[serde(rename = "storage:write")]
    StorageWrite,
    /// Read balances, transfers, prices and estimates.
    #[serde(rename = "credits:read")]
    CreditsRead,
    /// Run the cost optimizer on a cluster snapshot.
    #[serde(rename = "optimizer:run")]
    OptimizerRun,
}

impl Scope {
    /// Every scope.
    pub const ALL: &'static [Scope] = &[
        Scope::Admin,
        Scope::WorkspacesRead,
        Scope::WorkspacesWrite,
        Scope::TemplatesRead,
        Scope::TemplatesWrite,
        Scope::KeysRead,
        Scope::KeysWrite,
        Scope::SessionsRead,
        Scope::SessionsWrite,
        Scope::StorageRead,
        Scope::StorageWrite,
        Scope::CreditsRead,
        Scope::OptimizerRun,
    ];

    /// The scopes a key gets when none are asked for: everything but `admin`.
    pub fn member_defaults() -> Vec<Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(|s| *s != Scope::Admin)
            .collect()
    }

    /// The wire name (`workspaces:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::WorkspacesRead => "workspaces:read",
            Scope::WorkspacesWrite => "workspaces:write",
            Scope::TemplatesRead => "templates:read",
            Scope::TemplatesWrite => "templates:write",
            Scope::KeysRead => "keys:read",
            Scope::KeysWrite => "keys:write",
            Scope::SessionsRead => "sessions:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::StorageRead => "storage:read",
            Scope::StorageWrite => "storage:write",
            Scope::CreditsRead => "credits:read",
            Scope::OptimizerRun => "optimizer:run",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .iter()
            .copied()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}"))
    }
}

/// An API key as its owner sees it: never the secret, only its first characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// The key's id.
    pub id: ApiKeyId,
    /// The user the key acts for.
    pub user_id: UserId,
    /// A name to recognise the key by.
    pub name: String,
    /// The first characters of the secret (`onm_Ab12Cd34`), to recognise it.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the key was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the key was last used (updated at most once a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key carries `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}
