use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use crate::api::{CreateApiKey, CreatedApiKey, ErrorCode, ListParams, Page};
use crate::auth_cache::Lookup;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::id::{ApiKeyId, UserId};
use crate::model::{ApiKey, ApiKeyRecord, Role, Scope};
use crate::passport::{KeyDigest, Secret};
use crate::principal::Principal;
use crate::validation::validate;

/// API keys ("passports"): creation, listing, revocation, and authentication of requests.
#[derive(Debug)]
pub struct ApiKeyService<'e> {
    engine: &'e Engine,
}

/// A new key record for `user` and its secret.
pub(crate) fn new_key(
    user: UserId,
    name: String,
    mut scopes: Vec<Scope>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (ApiKeyRecord, Secret) {
    scopes.sort();
    scopes.dedup();
    let secret = Secret::generate();
    let key = ApiKey {
        id: ApiKeyId::new(),
        user_id: user,
        name,
        prefix: secret.display_prefix().to_owned(),
        scopes,
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    let record = ApiKeyRecord {
        key,
        digest: KeyDigest::of(&secret),
    };
    (record, secret)
}

impl<'e> ApiKeyService<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    /// Authenticates a request by the secret it carried.
    ///
    /// The secret's checksum is checked before any lookup; the lookup is by SHA-256 digest and
    /// the stored digest is compared again in constant time. Revoked and expired keys are
    /// rejected with their own codes. A key that authenticated is then served from memory for
    /// a short bounded time, and a revocation on any replica takes effect within a second (see
    /// [`crate::auth_cache`]). `last_used_at` is recorded at most once per
    /// `key_touch_interval_secs` and written in batches, off the request path.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let secret = Secret::parse(secret.trim()).map_err(|e| {
            Error::with_code(ErrorCode::InvalidApiKey, format!("invalid API key: {e}"))
        })?;
        let digest = KeyDigest::of(&secret);
        let cache = &self.engine.shared().auth;
        let now = self.engine.clock().now();
        let interval = self.touch_interval();
        self.refresh_epoch_in_background();
        if let Lookup::Hit { principal, touch } = cache.lookup(&digest, now, interval) {
            if touch && let Some(key) = principal.key_id() {
                cache.record_use(key, now);
            }
            self.write_uses_in_background(false);
            return Ok(principal);
        }
        if cache.needs_epoch() {
            // Read before the key, so that a revocation committed after this read is caught
            // by the next one (see `auth_cache`).
            read_epoch(self.engine).await;
        }
        let db = self.engine.database();
        let record = db
            .api_keys()
            .find_by_digest(&digest)
            .await?
            .filter(|r| r.digest.ct_eq(&digest))
            .ok_or_else(|| Error::with_code(ErrorCode::InvalidApiKey, "unknown API key"))?;
        let key = record.key;
        if key.revoked_at.is_some() {
            return Err(Error::with_code(
                ErrorCode::ApiKeyRevoked,
                "this API key was revoked",
            ));
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::with_code(
                ErrorCode::ApiKeyExpired,
                "this API key has expired",
            ));
        }
        let user = db
            .users()
            .get(key.user_id)
            .await?
            .ok_or_else(|| Error::with_code(ErrorCode::InvalidApiKey, "unknown API key"))?;
        let last_used = key.last_used_at.max(cache.last_use(key.id));
        let last_used = if last_used.is_none_or(|at| now - at >= interval) {
            cache.record_use(key.id, now);
            Some(now)
        } else {
            last_used
        };
        // A key keeps the admin scope only while its user is an admin.
        let scopes = if user.role == Role::Admin {
            key.scopes
        } else {
            key.scopes
                .into_iter()
                .filter(|s| *s != Scope::Admin)
                .collect()
        };
        let principal = Principal::from_key(user.id, user.role, key.id, scopes);
        cache.insert(digest, principal.clone(), key.expires_at, last_used);
        self.write_uses_in_background(false);
        Ok(principal)
    }

    fn touch_interval(&self) -> Duration {
        Duration::seconds(
            i64::try_from(self.engine.config().key_touch_interval_secs).unwrap_or(i64::MAX),
        )
    }

    /// Re-reads the revocation epoch in a task of its own when it is due (one at a time).
    fn refresh_epoch_in_background(&self) {
        let cache = &self.engine.shared().auth;
        if !cache.claim_refresh() {
            return;
        }
        let engine = self.engine.clone();
        tokio::spawn(async move {
            read_epoch(&engine).await;
            engine.shared().auth.refresh_done();
        });
    }

    /// Writes the recorded uses of keys in a task of its own when a batch is due (or now,
    /// with `force`).
    pub(crate) fn write_uses_in_background(&self, force: bool) {
        let Some(uses) = self.engine.shared().auth.take_due_uses(force) else {
            return;
        };
        let engine = self.engine.clone();
        let interval = self.touch_interval();
        tokio::spawn(async move {
            if let Err(e) = engine
                .database()
                .api_keys()
                .touch_many(&uses, interval)
                .await
            {
                tracing::warn!(keys = uses.len(), error = %e, "could not record API key uses");
            }
            engine.shared().auth.flush_done();
        });
    }

    /// `key` as this replica knows it: its last use may not be written yet.
    fn with_recorded_use(&self, mut key: ApiKey) -> ApiKey {
        key.last_used_at = key
            .last_used_at
            .max(self.engine.shared().auth.last_use(key.id));
        key
    }

    /// Creates a key for the caller. Its scopes default to, and must be a subset of, the
    /// caller's own; the secret is in the answer and nowhere else.
    pub async fn create(&self, caller: &Principal, request: CreateApiKey) -> Result<CreatedApiKey> {
        caller.require(Scope::KeysWrite)?;
        validate(&request)?;
        let now = self.engine.clock().now();
        let scopes = match request.scopes {
            Some(scopes) => {
                if scopes.is_empty() {
                    return Err(Error::invalid("scopes", "scopes must not be empty"));
                }
                if let Some(extra) = scopes.iter().find(|s| !caller.has(**s)) {
                    return Err(Error::with_code(
                        ErrorCode::InsufficientScope,
                        format!("cannot grant `{extra}`: the calling key does not have it"),
                    )
                    .with_context("field", "scopes"));
                }
                scopes
            }
            None => caller.scopes().to_vec(),
        };
        let expires_at = request.expires_at.map(crate::clock::to_millis);
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(Error::invalid(
                "expires_at",
                "expires_at must be in the future",
            ));
        }
        let user = caller.user_id();
        let (record, secret) = new_key(user, request.name, scopes, expires_at, now);
        self.engine.database().api_keys().insert(&record).await?;
        tracing::info!(user = %user, key = %record.key.id, "api key created");
        Ok(CreatedApiKey {
            key: record.key,
            secret: secret.expose().to_owned(),
        })
    }

    /// A page of the caller's keys.
    pub async fn list(&self, caller: &Principal, params: &ListParams) -> Result<Page<ApiKey>> {
        caller.require(Scope::KeysRead)?;
        let mut page = self
            .engine
            .database()
            .api_keys()
            .list(caller.user_id(), params.to_request()?)
            .await?;
        page.items = page
            .items
            .into_iter()
            .map(|k| self.with_recorded_use(k))
            .collect();
        Ok(page)
    }

    /// One of the caller's keys.
    pub async fn get(&self, caller: &Principal, id: ApiKeyId) -> Result<ApiKey> {
        caller.require(Scope::KeysRead)?;
        self.engine
            .database()
            .api_keys()
            .get(caller.user_id(), id)
            .await?
            .map(|k| self.with_recorded_use(k))
            .ok_or_else(|| key_not_found(id))
    }

    /// Revokes one of the caller's keys (revoking twice keeps the first time). A key can only
    /// revoke keys whose scopes it holds itself: a narrow `keys:write` key cannot take away a
    /// wider one.
    pub async fn revoke(&self, caller: &Principal, id: ApiKeyId) -> Result<ApiKey> {
        caller.require(Scope::KeysWrite)?;
        let target = self
            .engine
            .database()
            .api_keys()
            .get(caller.user_id(), id)
            .await?
            .ok_or_else(|| key_not_found(id))?;
        if let Some(wider) = target.scopes.iter().find(|s| !caller.has(**s)) {
            return Err(Error::with_code(
                ErrorCode::InsufficientScope,
                format!("cannot revoke a key holding `{wider}`: the calling key does not have it"),
            ));
        }
        let now = self.engine.clock().now();
        let key = self
            .engine
            .database()
            .api_keys()
            .revoke(caller.user_id(), id, now)
            .await?
            .ok_or_else(|| key_not_found(id))?;
        // Other replicas see the revocation epoch move within a second; this one forgets
        // its keys at once.
        self.engine.shared().auth.clear();
        tracing::info!(key = %id, "api key revoked");
        Ok(self.with_recorded_use(key))
    }
}

/// Reads the revocation epoch into the engine's cache of keys (a failure is logged: the cache
/// then stops serving once its last read is too old).
async fn read_epoch(engine: &Engine) {
    let started = Instant::now();
    match engine.database().api_keys().revocation_epoch().await {
        Ok(epoch) => engine.shared().auth.epoch_read(epoch, started),
        Err(e) => tracing::warn!(error = %e, "could not read the revocation epoch"),
    }
}

fn key_not_found(id: ApiKeyId) -> Error {
    Error::not_found("API key not found").with_context("api_key", id.to_string())
}
