use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::UserId;
use crate::model::Scope;

/// What a user may do beyond their own resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May manage users and grant credits; may hold keys with the `admin` scope.
    Admin,
    /// An ordinary account holder.
    Member,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// The scopes a user of this role holds when acting in-process, and the first key gets.
    pub fn default_scopes(self) -> Vec<Scope> {
        match self {
            Role::Admin => Scope::ALL.to_vec(),
            Role::Member => Scope::member_defaults(),
        }
    }

    /// The role of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// An account holder: owns workspaces, API keys and a credit account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The user's email address, unique (case-insensitively) across users.
    pub email: String,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's role.
    pub role: Role,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}
