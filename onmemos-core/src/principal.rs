//! Who is calling: the authenticated user, their role, and the scopes of the key they used.

use crate::api::ErrorCode;
use crate::error::{Error, Result};
use crate::id::{ApiKeyId, UserId};
use crate::model::{Role, Scope, User};

/// The caller of a service method. Built by [`ApiKeyService::authenticate`] for HTTP requests,
/// or with [`Principal::for_user`] by a program calling the engine in-process.
///
/// [`ApiKeyService::authenticate`]: crate::services::ApiKeyService::authenticate
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    user_id: UserId,
    role: Role,
    key_id: Option<ApiKeyId>,
    scopes: Vec<Scope>,
}

impl Principal {
    /// A caller acting as `user` with every scope the user's role allows (in-process use).
    pub fn for_user(user: &User) -> Self {
        Self {
            user_id: user.id,
            role: user.role,
            key_id: None,
            scopes: user.role.default_scopes(),
        }
    }

    /// The operator of this deployment acting in-process (e.g. `onmemos admin`): an
    /// administrator with every scope, not tied to a user account. Never built from a request.
    pub fn operator() -> Self {
        Self {
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            role: Role::Admin,
            key_id: None,
            scopes: Scope::ALL.to_vec(),
        }
    }

    /// A caller authenticated by an API key; the scopes are the key's.
    pub fn from_key(user_id: UserId, role: Role, key_id: ApiKeyId, scopes: Vec<Scope>) -> Self {
        Self {
            user_id,
            role,
            key_id: Some(key_id),
            scopes,
        }
    }

    /// The user acting.
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    /// The user's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The key used, if the caller authenticated with one.
    pub fn key_id(&self) -> Option<ApiKeyId> {
        self.key_id
    }

    /// The scopes the caller holds.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Whether the caller holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// `Ok` if the caller holds `scope`, else `insufficient_scope` naming it.
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(Error::with_code(
                ErrorCode::InsufficientScope,
                format!("this API key lacks the `{scope}` scope"),
            )
            .with_context("scope", scope.as_str()))
        }
    }

    /// `Ok` if the caller is an admin holding the `admin` scope.
    pub fn require_admin(&self) -> Result<()> {
        self.require(Scope::Admin)?;
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::permission_denied("only administrators may do this"))
        }
    }
}
