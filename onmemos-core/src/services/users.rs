use crate::api::{CreateUser, CreatedUser, ListParams, Page};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::id::UserId;
use crate::model::{Role, User};
use crate::principal::Principal;
use crate::services::api_keys::new_key;
use crate::validation::validate;

/// Users: creation (by an admin, or the bootstrap of the first admin), lookup, listing.
#[derive(Debug)]
pub struct UserService<'e> {
    engine: &'e Engine,
}

impl<'e> UserService<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    /// Creates a user and their first API key (admin only).
    pub async fn create(&self, caller: &Principal, request: CreateUser) -> Result<CreatedUser> {
        caller.require_admin()?;
        self.insert(request).await
    }

    /// Creates a user and their first API key without a caller: for trusted in-process use,
    /// such as `onmemos admin create-user` creating the first administrator.
    pub async fn bootstrap(&self, request: CreateUser) -> Result<CreatedUser> {
        self.insert(request).await
    }

    async fn insert(&self, request: CreateUser) -> Result<CreatedUser> {
        validate(&request)?;
        let role = request.role.unwrap_or(Role::Member);
        let user = User {
            id: UserId::new(),
            email: request.email.trim().to_lowercase(),
            name: request.name,
            role,
            created_at: self.engine.clock().now(),
        };
        let scopes = role.default_scopes();
        let (record, secret) =
            new_key(user.id, "initial key".into(), scopes, None, user.created_at);
        self.engine
            .database()
            .users()
            .insert(&user, Some(&record))
            .await?;
        tracing::info!(user = %user.id, role = role.as_str(), "user created");
        Ok(CreatedUser {
            user,
            api_key: crate::api::CreatedApiKey {
                key: record.key,
                secret: secret.expose().to_owned(),
            },
        })
    }

    /// The caller's own user.
    pub async fn me(&self, caller: &Principal) -> Result<User> {
        self.engine
            .database()
            .users()
            .get(caller.user_id())
            .await?
            .ok_or_else(|| Error::not_found("user not found"))
    }

    /// A user: the caller themself, or anyone for an admin.
    pub async fn get(&self, caller: &Principal, id: UserId) -> Result<User> {
        if id != caller.user_id() {
            caller
                .require_admin()
                .map_err(|_| Error::not_found("user not found"))?;
        }
        self.engine
            .database()
            .users()
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found("user not found").with_context("user", id.to_string()))
    }

    /// A page of all users (admin only).
    pub async fn list(&self, caller: &Principal, params: &ListParams) -> Result<Page<User>> {
        caller.require_admin()?;
        self.engine
            .database()
            .users()
            .list(params.to_request()?)
            .await
    }

    /// How many users exist (to decide whether a first admin must be bootstrapped).
    pub async fn count(&self) -> Result<u64> {
        self.engine.database().users().count().await
    }
}
