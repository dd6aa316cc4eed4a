//! The `Database` port: grouped repositories over the system of record.
//!
//! Every query on a user's resources takes the owner, so a repository cannot return another
//! tenant's rows by construction. Lists are ordered by id (ids are time-ordered) and paginated
//! with [`PageRequest`]. Implementation: `SqlDatabase` (SQLite and PostgreSQL) in
//! `onmemos-backends`; both pass the conformance suite in `onmemos_core::testing`.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::api::{Page, PageRequest};
use crate::error::Result;
use crate::id::{ApiKeyId, SessionId, TemplateId, UploadId, UserId, WorkspaceId};
use crate::model::{
    AccountCounters, AccountRef, ApiKey, ApiKeyRecord, Balance, LedgerOp, Session, SessionEvent,
    SessionEventKind, SessionRecord, SessionStatus, Template, TemplateCategory, Transfer,
    TransferId, TransferKind, User, Workspace,
};
use crate::model::{StorageUsageRecord, UploadPart, UploadRecord};
use crate::passport::KeyDigest;

/// What a database implementation supports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatabaseCapabilities {
    /// The implementation's name (`sqlite`, `postgres`).
    pub name: &'static str,
    /// Whether several server processes may share this database.
    pub shared_by_replicas: bool,
    /// Whether row leases (`FOR UPDATE SKIP LOCKED`) are available to spread work over replicas.
    pub skip_locked: bool,
}

impl DatabaseCapabilities {
    /// A database named `name` that supports nothing optional; say what it does with the
    /// `with_*` methods, by name (`DatabaseCapabilities::new("pg").with_skip_locked(true)`).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            shared_by_replicas: false,
            skip_locked: false,
        }
    }

    /// The same, saying whether several server processes may share it.
    pub fn with_shared_by_replicas(mut self, shared: bool) -> Self {
        self.shared_by_replicas = shared;
        self
    }

    /// The same, saying whether row leases (`FOR UPDATE SKIP LOCKED`) are available.
    pub fn with_skip_locked(mut self, skip_locked: bool) -> Self {
        self.skip_locked = skip_locked;
        self
    }
}

/// The system of record: users, keys, workspaces, templates, sessions, the ledger…
#[async_trait]
pub trait Database: Send + Sync + Debug + 'static {
    /// What this implementation supports.
    fn capabilities(&self) -> DatabaseCapabilities;
    /// Checks that the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;
    /// Users.
    fn users(&self) -> &dyn UserRepo;
    /// API keys.
    fn api_keys(&self) -> &dyn ApiKeyRepo;
    /// Workspaces.
    fn workspaces(&self) -> &dyn WorkspaceRepo;
    /// Templates.
    fn templates(&self) -> &dyn TemplateRepo;
    /// Sessions, their billing state and their events.
    fn sessions(&self) -> &dyn SessionRepo;
    /// The credit ledger.
    fn ledger(&self) -> &dyn LedgerRepo;
    /// Stored responses of requests made with an idempotency key.
    fn idempotency(&self) -> &dyn IdempotencyRepo;
    /// Storage billing state.
    fn storage_usage(&self) -> &dyn StorageUsageRepo;
    /// Resumable uploads in progress.
    fn uploads(&self) -> &dyn UploadRepo;
}

/// Users.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Inserts a user and, atomically with it, their first API key.
    /// `Conflict` when the email (compared case-insensitively) is taken.
    async fn insert(&self, user: &User, first_key: Option<&ApiKeyRecord>) -> Result<()>;
    /// The user with this id.
    async fn get(&self, id: UserId) -> Result<Option<User>>;
    /// A page of users, by id.
    async fn list(&self, page: PageRequest<UserId>) -> Result<Page<User>>;
    /// How many users there are.
    async fn count(&self) -> Result<u64>;
}

/// API keys (stored as digests only).
#[async_trait]
pub trait ApiKeyRepo: Send + Sync {
    /// Inserts a key. `Conflict` if the digest exists (a 178-bit collision: never in practice).
    async fn insert(&self, record: &ApiKeyRecord) -> Result<()>;
    /// The key with this digest, revoked and expired ones included.
    async fn find_by_digest(&self, digest: &KeyDigest) -> Result<Option<ApiKeyRecord>>;
    /// One of `user`'s keys.
    async fn get(&self, user: UserId, id: ApiKeyId) -> Result<Option<ApiKey>>;
    /// A page of `user`'s keys, by id.
    async fn list(&self, user: UserId, page: PageRequest<ApiKeyId>) -> Result<Page<ApiKey>>;
    /// Marks one of `user`'s keys revoked at `at` (the first revocation time is kept), and
    /// raises the revocation epoch in the same transaction.
    /// Returns the key as it is now, or `None` if `user` has no such key.
    async fn revoke(&self, user: UserId, id: ApiKeyId, at: DateTime<Utc>)
    -> Result<Option<ApiKey>>;
    /// The revocation epoch: a number every revocation raises in the same transaction, so
    /// that a replica caching authenticated keys learns of revocations by reading one value.
    async fn revocation_epoch(&self) -> Result<u64>;
    /// [`Self::touch`] for several keys, in one write where the database can.
    async fn touch_many(
        &self,
        uses: &[(ApiKeyId, DateTime<Utc>)],
        interval: chrono::Duration,
    ) -> Result<()> {
        for (id, at) in uses {
            self.touch(*id, *at, interval).await?;
        }
        Ok(())
    }
    /// Sets `last_used_at = at` unless it is already later than `at - interval`; returns whether
    /// it wrote. Replicas racing on the same key write at most once per interval.
    async fn touch(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        interval: chrono::Duration,
    ) -> Result<bool>;
}

/// Workspaces, always scoped to their owner.
#[async_trait]
pub trait WorkspaceRepo: Send + Sync {
    /// Inserts a workspace; `Conflict` when the owner has one of that name.
    async fn insert(&self, workspace: &Workspace) -> Result<()>;
    /// One of `owner`'s workspaces.
    async fn get(&self, owner: UserId, id: WorkspaceId) -> Result<Option<Workspace>>;
    /// A page of `owner`'s workspaces, by id.
    async fn list(&self, owner: UserId, page: PageRequest<WorkspaceId>) -> Result<Page<Workspace>>;
    /// Replaces the name, description, env and `updated_at` of the owner's workspace
    /// `workspace.id`. `NotFound` if missing, `Conflict` if the new name is taken.
    async fn update(&self, workspace: &Workspace) -> Result<()>;
    /// Deletes one of `owner`'s workspaces; returns whether it existed.
    async fn delete(&self, owner: UserId, id: WorkspaceId) -> Result<bool>;
}

/// The storage billing state of workspaces. Writes are conditional on the version, and due
/// records are leased like sessions, so replicas share the sampling.
#[async_trait]
pub trait StorageUsageRepo: Send + Sync {
    /// Gives every workspace without a record one, sampled at `now` with 0 bytes and due at
    /// once; returns how many were added.
    async fn enroll(&self, now: DateTime<Utc>) -> Result<u64>;
    /// The record of a workspace.
    async fn get(&self, workspace: WorkspaceId) -> Result<Option<StorageUsageRecord>>;
    /// Leases up to `limit` records due at `now` (`next_sample_at <= now`, or a charge
    /// pending; no live lease) to `holder` until `until`, and returns them.
    async fn claim_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StorageUsageRecord>>;
    /// Writes `record` if the stored version is `record.version - 1`, releasing the lease;
    /// returns whether it was written.
    async fn update(&self, record: &StorageUsageRecord) -> Result<bool>;
}

/// Resumable uploads in progress and the parts they received. Rows go with their workspace.
#[async_trait]
pub trait UploadRepo: Send + Sync {
    /// Records a new upload.
    async fn insert(&self, upload: &UploadRecord) -> Result<()>;
    /// The upload `id` of `owner`'s workspace `workspace`.
    async fn get(
        &self,
        owner: UserId,
        workspace: WorkspaceId,
        id: UploadId,
    ) -> Result<Option<UploadRecord>>;
    /// Records part `part` of upload `id` (replacing an earlier one with its number).
    async fn put_part(&self, id: UploadId, part: &UploadPart) -> Result<()>;
    /// The parts upload `id` received, by number.
    async fn parts(&self, id: UploadId) -> Result<Vec<UploadPart>>;
    /// Forgets upload `id` and its parts; returns whether it existed.
    async fn delete(&self, id: UploadId) -> Result<bool>;
    /// The bytes announced by the uploads in progress into `workspace`.
    async fn pending_bytes(&self, workspace: WorkspaceId) -> Result<u64>;
    /// [`Self::pending_bytes`] of each of `workspaces`, in their order (a billing batch asks
    /// for all of its workspaces at once). The default asks for each in turn.
    async fn pending_bytes_of(&self, workspaces: &[WorkspaceId]) -> Result<Vec<u64>> {
        let mut bytes = Vec::with_capacity(workspaces.len());
        for w in workspaces {
            bytes.push(self.pending_bytes(*w).await?);
        }
        Ok(bytes)
    }
    /// Up to `limit` uploads that expired at `now`, or every upload of `workspace` when given.
    async fn abandoned(
        &self,
        now: DateTime<Utc>,
        workspace: Option<WorkspaceId>,
        limit: u32,
    ) -> Result<Vec<UploadRecord>>;
}

/// Filters for listing templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateFilter {
    /// Only this category.
    pub category: Option<TemplateCategory>,
    /// Only templates carrying this tag.
    pub tag: Option<String>,
}

/// Templates: built-ins (no owner, visible to all) and custom ones (visible to their owner).
#[async_trait]
pub trait TemplateRepo: Send + Sync {
    /// Inserts the built-in `template` if no built-in has its name, else refreshes the stored
    /// one's definition (keeping its id, usage count and creation time).
    async fn upsert_builtin(&self, template: &Template) -> Result<()>;
    /// Inserts a custom template; `Conflict` when its owner has one of that name.
    async fn insert(&self, template: &Template) -> Result<()>;
    /// A template `user` can see: a built-in or one of their own.
    async fn get_visible(&self, user: UserId, id: TemplateId) -> Result<Option<Template>>;
    /// The template called `name` that `user` can see (their own first, then a built-in).
    async fn find_visible_by_name(&self, user: UserId, name: &str) -> Result<Option<Template>>;
    /// A page of the templates `user` can see, by id.
    async fn list_visible(
        &self,
        user: UserId,
        filter: &TemplateFilter,
        page: PageRequest<TemplateId>,
    ) -> Result<Page<Template>>;
    /// Deletes one of `owner`'s custom templates; returns whether it existed.
    async fn delete(&self, owner: UserId, id: TemplateId) -> Result<bool>;
}

/// Filters for listing sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only sessions of this workspace.
    pub workspace: Option<WorkspaceId>,
    /// Only sessions in this status.
    pub status: Option<SessionStatus>,
    /// Only sessions started from this template.
    pub template: Option<TemplateId>,
}

/// A finished session, as the estimator learns from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSample {
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
    /// What it cost.
    pub cost_micros: i64,
    /// Its hourly rate.
    pub rate_micros_per_hour: i64,
}

/// An event to append to a session's trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSessionEvent {
    /// The session.
    pub session: SessionId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: SessionEventKind,
    /// For people.
    pub message: String,
}

/// Sessions, their billing state and their event trail.
///
/// Writes of a record are conditional on its version (optimistic locking), so two monitors, or a
/// monitor and a user's stop, never both apply a change to the same state.
#[async_trait]
pub trait SessionRepo: Send + Sync {
    /// Inserts a session and counts a use of its template, atomically.
    async fn insert(&self, record: &SessionRecord) -> Result<()>;
    /// One of `owner`'s sessions.
    async fn get(&self, owner: UserId, id: SessionId) -> Result<Option<Session>>;
    /// A session with its billing state, whoever owns it (for the monitor).
    async fn record(&self, id: SessionId) -> Result<Option<SessionRecord>>;
    /// A page of `owner`'s sessions, by id.
    async fn list(
        &self,
        owner: UserId,
        filter: &SessionFilter,
        page: PageRequest<SessionId>,
    ) -> Result<Page<Session>>;
    /// Stores `record` if the stored version is `record.version - 1`, releasing any lease;
    /// returns whether it wrote (`false`: someone else changed the session first).
    async fn update(&self, record: &SessionRecord) -> Result<bool>;
    /// Stores each of `records` as [`Self::update`] does, in one write where the database
    /// can; returns, for each, whether it was written.
    async fn update_batch(&self, records: &[SessionRecord]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            out.push(self.update(record).await?);
        }
        Ok(out)
    }
    /// Stores only the billing state a tick changes — `cost_micros`, `billed_ms`, `tick`, the
    /// hold, `covered_until`, `next_check_at`, the warnings and the version — of each of
    /// `records`, if its stored version is `version - 1`, releasing its lease; the rest of the
    /// stored record stays as it is — and appends, in order, those of `events` whose session
    /// was written (an event of a tick that lost the race to a stop tells of a charge that is
    /// not its session's). One transaction where the database can. Returns, for each record,
    /// whether it was written, and the events as stored.
    async fn record_ticks(
        &self,
        records: &[SessionRecord],
        events: &[NewSessionEvent],
    ) -> Result<(Vec<bool>, Vec<SessionEvent>)> {
        let written = self.update_batch(records).await?;
        let kept = ticked_events(records, &written, events);
        let stored = self.append_events(&kept).await?;
        Ok((written, stored))
    }
    /// Moves `last_activity_at` forward to `at` (never back).
    async fn touch(&self, id: SessionId, at: DateTime<Utc>) -> Result<()>;
    /// [`Self::touch`] for several sessions, in one write where the database can.
    async fn touch_many(&self, activity: &[(SessionId, DateTime<Utc>)]) -> Result<()> {
        for (id, at) in activity {
            self.touch(*id, *at).await?;
        }
        Ok(())
    }
    /// Leases to `holder`, until `until`, up to `limit` running sessions whose next check is due
    /// at `now` and that nobody else holds (`FOR UPDATE SKIP LOCKED` where the database has it).
    async fn claim_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>>;
    /// The earliest moment a running session is due and claimable: its next check, or the end
    /// of the lease that holds it when that is later. `None` when no session runs. It may be
    /// earlier than that, never later (the monitor then wakes early and finds nothing due), so
    /// that it need not read every running session: the monitor asks after every pass.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>>;
    /// The unfinished sessions started by `node`, or by any node when `None` (a compute every
    /// node reaches).
    async fn unfinished(&self, node: Option<&str>) -> Result<Vec<SessionRecord>>;
    /// The ids and statuses of [`Self::unfinished`]'s sessions, in the same order: what the
    /// monitor's sweep reads every check interval, which reads a whole record only for the
    /// sessions it stops.
    async fn unfinished_statuses(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<(SessionId, SessionStatus)>> {
        Ok(self
            .unfinished(node)
            .await?
            .into_iter()
            .map(|r| (r.session.id, r.session.status))
            .collect())
    }
    /// Deletes one of `owner`'s sessions with its events if it has finished; returns whether it
    /// did.
    async fn delete_finished(&self, owner: UserId, id: SessionId) -> Result<bool>;
    /// Appends to a session's event trail.
    async fn append_event(
        &self,
        session: SessionId,
        at: DateTime<Utc>,
        kind: &SessionEventKind,
        message: &str,
    ) -> Result<SessionEvent>;
    /// Appends several events, in order, in one write where the database can; returns them
    /// as stored.
    async fn append_events(&self, events: &[NewSessionEvent]) -> Result<Vec<SessionEvent>> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(
                self.append_event(e.session, e.at, &e.kind, &e.message)
                    .await?,
            );
        }
        Ok(out)
    }
    /// Up to `limit` events of a session with `seq > after`, oldest first.
    async fn events(&self, session: SessionId, after: u64, limit: u32)
    -> Result<Vec<SessionEvent>>;
    /// The latest `limit` sessions of a template that ran and finished, of one owner or of all.
    async fn history(
        &self,
        template: TemplateId,
        owner: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<SessionSample>>;
}

/// The credit ledger (SPEC §4). Implementations apply each operation atomically: all of its
/// effects, or none. Operations arrive validated (`LedgerOp::validate_at`).
///
/// The semantics are those of the in-memory [`ReferenceLedger`](crate::ledger::ReferenceLedger),
/// which the conformance and model-check tests compare every implementation against.
#[async_trait]
pub trait LedgerRepo: Send + Sync {
    /// Applies `op` at `now`, or returns the transfer already stored under its id when that
    /// records the same operation (`idempotency_key_reused` when it records another).
    ///
    /// Errors: `not_found` (unknown user or hold), `insufficient_credits`, `conflict` (hold
    /// already settled or timed out), `invalid_request` (posting more than held).
    async fn execute(&self, op: &LedgerOp, now: DateTime<Utc>) -> Result<Transfer>;
    /// Applies `ops` in order at `now`, each as [`Self::execute`] would one after another —
    /// a later operation sees what an earlier one did (a hold the batch placed can be settled
    /// by it, a grant spent), and a refused one changes nothing — and returns each one's
    /// outcome. A database applies the batch in one transaction; `Err` only when none of it
    /// could be applied (the batch may then be retried as a whole: every operation is
    /// idempotent by its id).
    async fn apply_batch(
        &self,
        ops: &[LedgerOp],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Transfer>>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(self.execute(op, now).await);
        }
        Ok(out)
    }
    /// Releases holds whose timeout passed and expires the unspent remainder of grants whose
    /// expiry passed; returns the transfers made (none when nothing was due).
    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Transfer>>;
    /// The counters of several users' accounts, in one read where the database can (users
    /// without an account are left out).
    async fn counters(&self, users: &[UserId]) -> Result<Vec<(UserId, AccountCounters)>> {
        let mut out = Vec::with_capacity(users.len());
        for &user in users {
            out.push((user, self.balance(user).await?.counters));
        }
        Ok(out)
    }
    /// A user's balance (all zero for a user who never had credits).
    async fn balance(&self, user: UserId) -> Result<Balance>;
    /// The transfer with this id.
    async fn transfer(&self, id: &TransferId) -> Result<Option<Transfer>>;
    /// Transfers in ledger order — all, or those touching `account`, of `kind` — after
    /// sequence number `page.after`.
    async fn transfers(
        &self,
        account: Option<AccountRef>,
        kind: Option<TransferKind>,
        page: PageRequest<u64>,
    ) -> Result<Page<Transfer>>;
    /// Every account and its stored counters.
    async fn accounts(&self) -> Result<Vec<(AccountRef, AccountCounters)>>;
}

/// A response stored under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// The body (JSON text).
    pub body: String,
}

/// What to do with a request carrying an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First time: run it, then `complete` (or `abandon` on a server error).
    Started,
    /// The same request is running right now.
    InFlight,
    /// The same request already ran: answer with this.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
}

/// Records of requests made with an idempotency key, per user.
#[async_trait]
pub trait IdempotencyRepo: Send + Sync {
    /// Claims `key` for a request with `request_hash`, or says why not. A claim older than
    /// `stale_after` that never completed (its server died) may be taken over.
    async fn begin(
        &self,
        user: UserId,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
        stale_after: chrono::Duration,
    ) -> Result<IdempotencyBegin>;
    /// Stores the response of a claimed request.
    async fn complete(&self, user: UserId, key: &str, response: &StoredResponse) -> Result<()>;
    /// Releases a claim without storing a response (the request failed on the server's side).
    async fn abandon(&self, user: UserId, key: &str) -> Result<()>;
}

/// Those of `events` whose session is among `records` with `written` true, in order (see
/// [`SessionRepo::record_ticks`]).
pub fn ticked_events(
    records: &[SessionRecord],
    written: &[bool],
    events: &[NewSessionEvent],
) -> Vec<NewSessionEvent> {
    let ticked: std::collections::HashSet<SessionId> = records
        .iter()
        .zip(written)
        .filter(|(_, w)| **w)
        .map(|(r, _)| r.session.id)
        .collect();
    events
        .iter()
        .filter(|e| ticked.contains(&e.session))
        .cloned()
        .collect()
}
