//! Workspace storage: objects under each workspace's own prefix of the object store, within a
//! quota, billed per GiB-month from usage samples.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use crate::Engine;
use crate::api::{
    CreateUpload, ErrorCode, ObjectListParams, Page, PresignMethod, PresignRequest, PresignedUrl,
    StoredObject,
};
use crate::error::{Error, ErrorKind, Result};
use crate::id::{UploadId, WorkspaceId};
use crate::model::{
    GIB_MONTH_BYTE_MS, LedgerOp, MicroCredits, Scope, StorageUsage, StorageUsageRecord, Upload,
    UploadPart, UploadRecord, Workspace,
};
use crate::ports::StorageProvider;
use crate::ports::storage::{self, ByteStream, GetOptions, ObjectMeta, PartUpload, PutOptions};
use crate::principal::Principal;
use crate::services::credits::step_id;

/// The longest object path, in bytes (S3's and GCS's limit).
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest segment of an object path, in bytes (a file name on most file systems).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Items per page of a listing when the caller does not say.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// The most items a page of a listing can hold.
pub const MAX_LIST_LIMIT: u32 = 1000;
/// How long a presigned URL works when the caller does not say.
pub const DEFAULT_PRESIGN_SECS: u64 = 900;

/// The prefix of the object store holding `workspace`'s objects.
pub fn workspace_prefix(workspace: WorkspaceId) -> String {
    format!("workspaces/{workspace}/")
}

/// The key in the object store of the object at `path` in `workspace`.
fn object_key(workspace: WorkspaceId, path: &str) -> String {
    format!("{}{path}", workspace_prefix(workspace))
}

/// Checks a path a user sent for an object inside a workspace: relative, `/`-separated, no
/// empty, `.` or `..` segment, no control character (NUL included) or backslash, no
/// percent-encoding left after the URL was decoded, at most `MAX_PATH_BYTES` (1,024) bytes with
/// segments of at most `MAX_SEGMENT_BYTES` (255), and no name ending in `#` and digits (the local
/// store's temporary files).
pub fn validate_object_path(path: &str) -> Result<()> {
    check_path(path, "path", "object path")
}

/// The checks of [`validate_object_path`], reported against `field` as a `noun`.
fn check_path(path: &str, field: &'static str, noun: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(
            field,
            format!("invalid {noun} {path:?}: {why}"),
        ))
    };
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad(&format!("it is longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.starts_with('/') {
        return bad("it must be relative to the workspace (no leading `/`)");
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return bad(&format!("it contains the control character {c:?}"));
    }
    if path.contains('\\') {
        return bad("it contains a backslash");
    }
    if has_percent_encoding(path) {
        return bad("it still contains percent-encoding after decoding (`%XX`)");
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("it has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return bad("it has a `.` or `..` segment"),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return bad(&format!(
                    "a segment is longer than {MAX_SEGMENT_BYTES} bytes"
                ));
            }
            _ => {}
        }
    }
    if let Some((_, suffix)) = path.rsplit('/').next().unwrap_or(path).rsplit_once('#')
        && !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_digit())
    {
        return bad("names ending in `#` and digits are reserved");
    }
    Ok(())
}

/// Checks a listing prefix: empty, or a path whose last segment may be partial or empty.
fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    // A prefix ending in `/` is a directory; otherwise its last segment is partial.
    let whole = prefix.strip_suffix('/').unwrap_or(prefix);
    if whole.is_empty() {
        return Err(Error::invalid("prefix", "a prefix must not start with `/`"));
    }
    check_path(whole, "prefix", "prefix")
}

fn has_percent_encoding(path: &str) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// How a streamed upload (one `PUT`) is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOptions {
    /// The length the client announced (`Content-Length`), checked against the quota before
    /// any byte is read.
    pub length: Option<u64>,
    /// The content type to record, where the store keeps one.
    pub content_type: Option<String>,
    /// Fail with `conflict` if the object exists.
    pub if_absent: bool,
}

/// An object being downloaded.
pub struct Download {
    /// The object.
    pub object: StoredObject,
    /// The bytes in `body`.
    pub range: Range<u64>,
    /// The content.
    pub body: ByteStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("object", &self.object)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Memory for parts of resumable uploads: `total` slots server-wide, at most half of them
/// (at least one) held by any one tenant, so a tenant trickling bytes into its parts can
/// never keep every other tenant's parts waiting.
#[derive(Debug)]
pub(crate) struct PartSlots {
    global: tokio::sync::Semaphore,
    per_tenant: usize,
    held: Mutex<HashMap<crate::id::UserId, usize>>,
    freed: tokio::sync::Notify,
}

/// A slot of [`PartSlots`], released when dropped.
pub(crate) struct PartSlot<'a> {
    slots: &'a PartSlots,
    tenant: crate::id::UserId,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl PartSlots {
    pub(crate) fn new(total: usize) -> Self {
        Self {
            global: tokio::sync::Semaphore::new(total),
            per_tenant: (total / 2).max(1),
            held: Mutex::default(),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Waits for the tenant's share, then for a server-wide slot.
    pub(crate) async fn acquire(&self, tenant: crate::id::UserId) -> Result<PartSlot<'_>> {
        loop {
            let freed = self.freed.notified();
            {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                let mine = held.entry(tenant).or_default();
                if *mine < self.per_tenant {
                    *mine += 1;
                    break;
                }
            }
            freed.await;
        }
        match self.global.acquire().await {
            Ok(permit) => Ok(PartSlot {
                slots: self,
                tenant,
                _permit: permit,
            }),
            Err(_) => {
                self.release(tenant);
                Err(Error::unavailable("the server is shutting down"))
            }
        }
    }

    fn release(&self, tenant: crate::id::UserId) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mine) = held.get_mut(&tenant) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                held.remove(&tenant);
            }
        }
        drop(held);
        self.freed.notify_waiters();
    }
}

impl Drop for PartSlot<'_> {
    fn drop(&mut self) {
        self.slots.release(self.tenant);
    }
}

/// Bytes being uploaded per workspace on this server, counted against the quota before they
/// are stored.
#[derive(Debug, Default)]
pub(crate) struct InFlight(Mutex<HashMap<WorkspaceId, Arc<AtomicU64>>>);

impl InFlight {
    fn counter(&self, workspace: WorkspaceId) -> Arc<AtomicU64> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, c| Arc::strong_count(c) > 1 || c.load(Ordering::Relaxed) > 0);
        map.entry(workspace).or_default().clone()
    }
}

/// The bytes one upload has counted in its workspace's in-flight total; released when the
/// upload ends, however it ends.
struct Reservation {
    counter: Arc<AtomicU64>,
    mine: u64,
}

impl Reservation {
    /// Counts `n` more bytes; returns the workspace's in-flight total.
    fn add(&mut self, n: u64) -> u64 {
        self.mine = self.mine.saturating_add(n);
        self.counter
            .fetch_add(n, Ordering::SeqCst)
            .saturating_add(n)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.mine, Ordering::SeqCst);
    }
}

fn quota_exceeded(workspace: WorkspaceId, would: u64, quota: u64) -> Error {
    Error::with_code(
        ErrorCode::QuotaExceeded,
        format!(
            "workspace {workspace} would hold {would} bytes, over its storage quota of {quota} bytes"
        ),
    )
    .with_context("quota_bytes", quota.to_string())
}

/// Workspace storage, reached through [`Engine::storage`](crate::Engine::storage).
#[derive(Debug)]
pub struct StorageService<'a> {
    engine: &'a Engine,
}

impl<'a> StorageService<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    fn store(&self) -> Result<&'a Arc<dyn StorageProvider>> {
        self.engine.storage_provider().ok_or_else(|| {
            Error::with_code(
                ErrorCode::Unsupported,
                "this server has no object store configured (storage_url)",
            )
        })
    }

    /// The caller's workspace `id`, after checking the caller has `scope`.
    async fn workspace(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        scope: Scope,
    ) -> Result<Workspace> {
        caller.require(scope)?;
        self.engine
            .database()
            .workspaces()
            .get(caller.user_id(), id)
            .await?
            .ok_or_else(|| {
                Error::not_found("workspace not found").with_context("workspace", id.to_string())
            })
    }

    fn object(&self, workspace: WorkspaceId, meta: ObjectMeta) -> StoredObject {
        let prefix = workspace_prefix(workspace);
        StoredObject {
            path: meta
                .path
                .strip_prefix(&prefix)
                .unwrap_or(&meta.path)
                .to_owned(),
            size: meta.size,
            last_modified: meta.last_modified,
            etag: meta.etag,
        }
    }

    /// Stores `body` at `path` in workspace `id`, streaming it to the object store. The quota
    /// is checked before reading when the length is announced, and as the bytes arrive
    /// otherwise; an upload that would pass it, or whose body fails, leaves nothing behind.
    pub async fn upload(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        path: &str,
        body: ByteStream,
        upload: UploadOptions,
    ) -> Result<StoredObject> {
        self.workspace(caller, id, Scope::StorageWrite).await?;
        validate_object_path(path)?;
        let store = self.store()?;
        let key = object_key(id, path);
        let quota = self.engine.config().storage.quota_bytes;
        let stored = self.committed_bytes(store.as_ref(), id, &key).await?;
        let counter = self.engine.inner.uploads.counter(id);
        if let Some(length) = upload.length {
            let would = stored
                .saturating_add(counter.load(Ordering::SeqCst))
                .saturating_add(length);
            if would > quota {
                return Err(quota_exceeded(id, would, quota));
            }
        }
        let mut reservation = Reservation { counter, mine: 0 };
        let body = body
            .map(move |chunk| {
                let chunk = chunk?;
                let in_flight = reservation.add(chunk.len() as u64);
                let would = stored.saturating_add(in_flight);
                if would > quota {
                    return Err(quota_exceeded(id, would, quota));
                }
                Ok(chunk)
            })
            .boxed();
        let options = PutOptions {
            if_absent: upload.if_absent,
            content_type: upload.content_type,
        };
        let meta = store.put(&key, body, options).await?;
        tracing::debug!(workspace = %id, path, size = meta.size, "object stored");
        Ok(self.object(id, meta))
    }

    /// The bytes workspace `id` holds or has promised, not counting the object at `key` (which
    /// an upload replaces): stored objects plus resumable uploads in progress.
    async fn committed_bytes(
        &self,
        store: &dyn StorageProvider,
        id: WorkspaceId,
        key: &str,
    ) -> Result<u64> {
        let replaced = match store.head(key).await {
            Ok(meta) => meta.size,
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let stored = store.usage_bytes(&workspace_prefix(id)).await?;
        let promised = self.engine.database().uploads().pending_bytes(id).await?;
        Ok(stored.saturating_add(promised).saturating_sub(replaced))
    }

    /// Starts a resumable upload of `request.size` bytes to `request.path`: the client then
    /// sends each part ([`Self::put_part`]) and completes it ([`Self::complete_upload`]). The
    /// whole size counts against the quota from now until the upload ends.
    pub async fn create_upload(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        request: &CreateUpload,
    ) -> Result<Upload> {
        self.workspace(caller, id, Scope::StorageWrite).await?;
        validate_object_path(&request.path)?;
        let store = self.store()?;
        let key = object_key(id, &request.path);
        let quota = self.engine.config().storage.quota_bytes;
        if request.size > crate::api::MAX_OBJECT_BYTES {
            return Err(Error::invalid(
                "size",
                format!(
                    "{} bytes is larger than the largest object, {} bytes",
                    request.size,
                    crate::api::MAX_OBJECT_BYTES
                ),
            ));
        }
        let in_flight = self.engine.inner.uploads.counter(id).load(Ordering::SeqCst);
        let would = self
            .committed_bytes(store.as_ref(), id, &key)
            .await?
            .saturating_add(in_flight)
            .saturating_add(request.size);
        if would > quota {
            return Err(quota_exceeded(id, would, quota));
        }
        let started = store
            .create_upload(&key, request.size, request.content_type.as_deref())
            .await?;
        let now = self.engine.clock().now();
        let ttl = self.engine.config().storage.upload_ttl_secs;
        let record = UploadRecord {
            id: UploadId::new(),
            workspace_id: id,
            owner_id: caller.user_id(),
            path: request.path.clone(),
            size: request.size,
            part_size: started.part_size,
            content_type: request.content_type.clone(),
            store_upload_id: started.id,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX)),
        };
        if let Err(e) = self.engine.database().uploads().insert(&record).await {
            self.abandon(store.as_ref(), &record).await;
            return Err(e);
        }
        tracing::debug!(workspace = %id, upload = %record.id, path = record.path, size = record.size, "upload started");
        Ok(Upload::new(&record, Vec::new()))
    }

    /// The caller's upload `upload` into workspace `id`.
    async fn upload_record(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        upload: UploadId,
        scope: Scope,
    ) -> Result<UploadRecord> {
        self.workspace(caller, id, scope).await?;
        self.engine
            .database()
            .uploads()
            .get(caller.user_id(), id, upload)
            .await?
            .ok_or_else(|| {
                Error::not_found("upload not found").with_context("upload", upload.to_string())
            })
    }

    /// A resumable upload and the parts it received so far (what a client resumes from).
    pub async fn upload_status(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        upload: UploadId,
    ) -> Result<Upload> {
        let record = self
            .upload_record(caller, id, upload, Scope::StorageWrite)
            .await?;
        let parts = self.engine.database().uploads().parts(upload).await?;
        Ok(Upload::new(&record, parts))
    }

    /// Stores part `number` of an upload. The part must be exactly its size (`part_size`, or
    /// what is left for the last); it is held in memory while it is written, so parts are
    /// bounded. Sending a part again replaces it.
    pub async fn put_part(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        upload: UploadId,
        number: u32,
        length: Option<u64>,
        mut body: ByteStream,
    ) -> Result<UploadPart> {
        let record = self
            .upload_record(caller, id, upload, Scope::StorageWrite)
            .await?;
        let count = record.part_count();
        if number >= count {
            return Err(Error::invalid(
                "part",
                format!(
                    "upload {upload} has parts 0 to {}; there is no part {number}",
                    count - 1
                ),
            ));
        }
        let expected = record.part_len(number);
        let wrong_size = |got: u64| {
            Error::invalid(
                "part",
                format!("part {number} of upload {upload} must be {expected} bytes, not {got}"),
            )
        };
        if let Some(length) = length
            && length != expected
        {
            return Err(wrong_size(length));
        }
        // Nothing is held before the part's first bytes arrive; then memory for it, bounded
        // server-wide and shared fairly between tenants; then the part must arrive at the
        // minimum rate.
        let first = body.next().await.transpose()?;
        let _slot = self
            .engine
            .inner
            .part_slots
            .acquire(caller.user_id())
            .await?;
        let rate = self.engine.config().storage.part_min_bytes_per_sec.max(1);
        let allowed = std::time::Duration::from_secs((expected / rate).max(1));
        let read = async {
            let mut buf = bytes::BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0));
            let mut next = first;
            while let Some(chunk) = next {
                if (buf.len() + chunk.len()) as u64 > expected {
                    return Err(wrong_size((buf.len() + chunk.len()) as u64));
                }
                buf.extend_from_slice(&chunk);
                next = body.next().await.transpose()?;
            }
            if buf.len() as u64 != expected {
                return Err(wrong_size(buf.len() as u64));
            }
            Ok(buf)
        };
        let buf = tokio::time::timeout(allowed, read).await.map_err(|_| {
            Error::with_code(
                ErrorCode::RequestTimeout,
                format!(
                    "part {number} of upload {upload} did not arrive within {} s (at least {rate} bytes a second)",
                    allowed.as_secs()
                ),
            )
        })??;
        let key = object_key(id, &record.path);
        let tag = self
            .store()?
            .put_part(&key, &PartUpload::of(&record), number, buf.freeze())
            .await?;
        let part = UploadPart {
            number,
            size: expected,
            tag,
        };
        self.engine
            .database()
            .uploads()
            .put_part(upload, &part)
            .await?;
        Ok(part)
    }

    /// Assembles an upload whose parts all arrived into its object, and forgets the upload.
    pub async fn complete_upload(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        upload: UploadId,
    ) -> Result<StoredObject> {
        let record = self
            .upload_record(caller, id, upload, Scope::StorageWrite)
            .await?;
        let uploads = self.engine.database().uploads();
        let parts = uploads.parts(upload).await?;
        let missing = Upload::new(&record, parts.clone()).missing();
        if !missing.is_empty() {
            let shown: Vec<String> = missing.iter().take(20).map(u32::to_string).collect();
            return Err(Error::conflict(format!(
                "upload {upload} is missing {} of its {} parts: {}{}",
                missing.len(),
                record.part_count(),
                shown.join(", "),
                if missing.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            ))
            .with_context("upload", upload.to_string()));
        }
        let tags: Vec<String> = parts.into_iter().map(|p| p.tag).collect();
        let key = object_key(id, &record.path);
        let meta = self
            .store()?
            .complete_upload(&key, &PartUpload::of(&record), &tags)
            .await?;
        uploads.delete(upload).await?;
        tracing::debug!(workspace = %id, upload = %upload, path = record.path, size = meta.size, "upload completed");
        Ok(self.object(id, meta))
    }

    /// Abandons an upload and frees its parts.
    pub async fn abort_upload(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        upload: UploadId,
    ) -> Result<()> {
        let record = self
            .upload_record(caller, id, upload, Scope::StorageWrite)
            .await?;
        self.store()?
            .abort_upload(&object_key(id, &record.path), &PartUpload::of(&record))
            .await?;
        self.engine.database().uploads().delete(upload).await?;
        Ok(())
    }

    /// Frees the store's side of an upload, logging a failure (the store expires it too).
    async fn abandon(&self, store: &dyn StorageProvider, record: &UploadRecord) -> bool {
        let key = object_key(record.workspace_id, &record.path);
        match store.abort_upload(&key, &PartUpload::of(record)).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(upload = %record.id, error = %e, "the parts of an abandoned upload could not be freed");
                false
            }
        }
    }

    /// Abandons the uploads that expired at `now` (or all of `workspace`'s): frees their parts
    /// and forgets them. Returns how many were abandoned and how many could not be.
    pub(crate) async fn abandon_uploads(
        &self,
        now: DateTime<Utc>,
        workspace: Option<WorkspaceId>,
    ) -> Result<(usize, usize)> {
        let Some(store) = self.engine.storage_provider() else {
            return Ok((0, 0));
        };
        let uploads = self.engine.database().uploads();
        let (mut done, mut failed) = (0, 0);
        loop {
            let batch = uploads.abandoned(now, workspace, 100).await?;
            if batch.is_empty() {
                return Ok((done, failed));
            }
            for record in &batch {
                if self.abandon(store.as_ref(), record).await {
                    uploads.delete(record.id).await?;
                    done += 1;
                } else {
                    failed += 1;
                }
            }
            if failed > 0 {
                // Retried on the next pass rather than spun on here.
                return Ok((done, failed));
            }
        }
    }

    /// The metadata of the object at `path`.
    pub async fn head(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        path: &str,
    ) -> Result<StoredObject> {
        self.workspace(caller, id, Scope::StorageRead).await?;
        validate_object_path(path)?;
        let meta = self
            .store()?
            .head(&object_key(id, path))
            .await
            .map_err(|e| object_error(e, path))?;
        Ok(self.object(id, meta))
    }

    /// The object at `path` (or `range` of it), streamed; `if_match` makes the read fail with
    /// `precondition_failed` if the object changed since its etag was read.
    pub async fn download(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        path: &str,
        range: Option<Range<u64>>,
        if_match: Option<String>,
    ) -> Result<Download> {
        self.workspace(caller, id, Scope::StorageRead).await?;
        validate_object_path(path)?;
        let got = self
            .store()?
            .get(&object_key(id, path), GetOptions { range, if_match })
            .await
            .map_err(|e| object_error(e, path))?;
        Ok(Download {
            object: self.object(id, got.meta),
            range: got.range,
            body: got.body,
        })
    }

    /// Deletes the object at `path` (deleting a missing object is not an error).
    pub async fn delete(&self, caller: &Principal, id: WorkspaceId, path: &str) -> Result<()> {
        self.workspace(caller, id, Scope::StorageWrite).await?;
        validate_object_path(path)?;
        self.store()?.delete(&object_key(id, path)).await
    }

    /// A page of the workspace's objects in path order.
    pub async fn list(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        params: &ObjectListParams,
    ) -> Result<Page<StoredObject>> {
        self.workspace(caller, id, Scope::StorageRead).await?;
        let limit = params.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_LIST_LIMIT}"),
            ));
        }
        let prefix = params.prefix.as_deref().unwrap_or("");
        validate_prefix(prefix)?;
        if let Some(cursor) = &params.cursor
            && validate_object_path(cursor).is_err()
        {
            return Err(Error::with_code(
                ErrorCode::InvalidCursor,
                "cursor is not one this list returned",
            )
            .with_context("field", "cursor"));
        }
        let base = workspace_prefix(id);
        let after = params.cursor.as_ref().map(|c| format!("{base}{c}"));
        let listed = self
            .store()?
            .list(&format!("{base}{prefix}"), after.as_deref(), limit as usize)
            .await?;
        let items: Vec<StoredObject> = listed
            .objects
            .into_iter()
            .map(|m| self.object(id, m))
            .collect();
        let next_cursor = listed
            .next
            .map(|n| n.strip_prefix(&base).unwrap_or(&n).to_owned());
        Ok(Page { items, next_cursor })
    }

    /// A URL that allows one method on one object straight at the object store, without
    /// credentials, until it expires. Uploads through it bypass the quota (billing still
    /// counts them).
    pub async fn presign(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        request: &PresignRequest,
    ) -> Result<PresignedUrl> {
        let scope = match request.method {
            PresignMethod::Get => Scope::StorageRead,
            PresignMethod::Put => Scope::StorageWrite,
        };
        self.workspace(caller, id, scope).await?;
        validate_object_path(&request.path)?;
        let max = self.engine.config().storage.presign_max_secs;
        let secs = request
            .expires_in_secs
            .unwrap_or(DEFAULT_PRESIGN_SECS.min(max));
        if !(1..=max).contains(&secs) {
            return Err(Error::invalid(
                "expires_in_secs",
                format!("expires_in_secs must be between 1 and {max}"),
            ));
        }
        let method = match request.method {
            PresignMethod::Get => storage::PresignMethod::Get,
            PresignMethod::Put => storage::PresignMethod::Put,
        };
        let url = self
            .store()?
            .presign(
                method,
                &object_key(id, &request.path),
                Duration::from_secs(secs),
            )
            .await?;
        let expires_at = self.engine.clock().now()
            + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX));
        Ok(PresignedUrl {
            url,
            method: request.method,
            expires_at,
        })
    }

    /// What the workspace stores now, its quota and its storage bill.
    pub async fn usage(&self, caller: &Principal, id: WorkspaceId) -> Result<StorageUsage> {
        self.workspace(caller, id, Scope::StorageRead).await?;
        let bytes = self.store()?.usage_bytes(&workspace_prefix(id)).await?;
        let record = self.engine.database().storage_usage().get(id).await?;
        let sampled = record.as_ref().filter(|r| r.step > 0);
        Ok(StorageUsage {
            workspace_id: id,
            bytes,
            quota_bytes: self.engine.config().storage.quota_bytes,
            sampled_bytes: sampled.map(|r| r.bytes),
            sampled_at: sampled.map(|r| r.sampled_at),
            charged_micros: record.as_ref().map_or(0, |r| r.charged),
            owed_micros: record
                .as_ref()
                .map_or(0, |r| r.owed + r.pending.unwrap_or(0)),
        })
    }

    /// How many bytes over its quota workspace `id` is, when its files live on this machine
    /// and sessions write them directly (so no upload checked them): what is really stored,
    /// plus uploads in progress. `None` within the quota, or when files only arrive through
    /// the API, which checks the quota itself.
    pub(crate) async fn over_quota(&self, id: WorkspaceId) -> Result<Option<u64>> {
        let Some(store) = self.engine.storage_provider() else {
            return Ok(None);
        };
        let prefix = workspace_prefix(id);
        if store.local_dir(&prefix).is_none() {
            return Ok(None);
        }
        let stored = store.usage_bytes(&prefix).await?;
        let promised = self.engine.database().uploads().pending_bytes(id).await?;
        let quota = self.engine.config().storage.quota_bytes;
        let held = stored.saturating_add(promised);
        Ok(held.checked_sub(quota).filter(|over| *over > 0))
    }

    /// Removes every object and upload of a workspace (when it is deleted).
    pub(crate) async fn remove_all(&self, id: WorkspaceId) -> Result<u64> {
        let (_, failed) = self
            .abandon_uploads(self.engine.clock().now(), Some(id))
            .await?;
        if failed > 0 {
            return Err(Error::unavailable(format!(
                "{failed} uploads into workspace {id} could not be aborted; try again"
            )));
        }
        match self.engine.storage_provider() {
            Some(store) => store.delete_prefix(&workspace_prefix(id)).await,
            None => Ok(0),
        }
    }

    /// One billing pass at `now`: enrolls new workspaces, then samples and charges those due,
    /// leased to `holder`. Returns how many workspaces were sampled and how many steps failed
    /// (logged, and retried on the next pass).
    pub(crate) async fn bill_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<(usize, usize)> {
        let Some(store) = self.engine.storage_provider() else {
            return Ok((0, 0));
        };
        let repo = self.engine.database().storage_usage();
        repo.enroll(now).await?;
        let lease = self.engine.config().sessions.lease();
        let (mut sampled, mut failed) = (0, 0);
        loop {
            let due = repo.claim_due(holder, now, now + lease, 100).await?;
            if due.is_empty() {
                return Ok((sampled, failed));
            }
            for record in due {
                let ws = record.workspace_id;
                match self.bill(store.as_ref(), record, now).await {
                    Ok(true) => sampled += 1,
                    Ok(false) => {}
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(workspace = %ws, error = %e, "a storage billing step failed; it is retried on the next pass");
                    }
                }
            }
        }
    }

    /// Samples one workspace and charges the time since its last sample; `false` when another
    /// replica got there first.
    async fn bill(
        &self,
        store: &dyn StorageProvider,
        record: StorageUsageRecord,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let repo = self.engine.database().storage_usage();
        // A charge written by an earlier pass that did not reach the ledger.
        let record = match record.pending {
            Some(_) => match self.pay(record).await? {
                Some(paid) => paid,
                None => return Ok(false),
            },
            None => record,
        };
        if record.next_sample_at > now {
            // Claimed for its pending charge only; the lease is released by the write above.
            return Ok(true);
        }
        let bytes = store
            .usage_bytes(&workspace_prefix(record.workspace_id))
            .await?;
        let elapsed = (now - record.sampled_at).num_milliseconds().max(0);
        let price = i128::from(self.engine.config().pricing.storage_gib_month);
        let total =
            i128::from(record.carry) + price * i128::from(record.bytes) * i128::from(elapsed);
        let due = MicroCredits::try_from(total / GIB_MONTH_BYTE_MS)
            .map_err(|_| Error::internal("a storage charge overflows"))?;
        let amount = due + record.owed;
        let interval = self.engine.config().storage.billing_interval();
        let next = StorageUsageRecord {
            step: record.step + 1,
            sampled_at: now,
            bytes,
            carry: i64::try_from(total % GIB_MONTH_BYTE_MS)
                .map_err(|_| Error::internal("a storage carry overflows"))?,
            owed: 0,
            pending: (amount > 0).then_some(amount),
            next_sample_at: now + interval,
            version: record.version + 1,
            ..record
        };
        if !repo.update(&next).await? {
            return Ok(false);
        }
        if next.pending.is_some() {
            self.pay(next).await?;
        }
        Ok(true)
    }

    /// Posts the pending charge of `record` as transfer `<workspace>.storage.<step>`; what the
    /// owner's credits cannot cover becomes owed. Returns the record as written, `None` when
    /// another replica changed it meanwhile.
    async fn pay(&self, record: StorageUsageRecord) -> Result<Option<StorageUsageRecord>> {
        let Some(amount) = record.pending else {
            return Ok(Some(record));
        };
        let ws = record.workspace_id;
        let hold = step_id(ws, "storage-hold", record.step);
        let now = self.engine.clock().now();
        let credits = self.engine.credits();
        let held = credits
            .execute_or_replayed(&LedgerOp::Hold {
                id: hold.clone(),
                user: record.owner_id,
                amount,
                timeout_at: now + chrono::Duration::hours(1),
                reference: Some(format!("storage of workspace {ws}")),
            })
            .await;
        let charged = match held {
            Ok(_) => {
                let post = LedgerOp::Post {
                    id: step_id(ws, "storage", record.step),
                    hold,
                    amount,
                };
                credits.execute_or_replayed(&post).await?.amount
            }
            Err(e) if e.kind() == ErrorKind::InsufficientCredits => {
                tracing::warn!(workspace = %ws, amount, "the owner's credits do not cover the storage charge; it is carried as owed");
                0
            }
            Err(e) => return Err(e),
        };
        let settled = StorageUsageRecord {
            charged: record.charged + charged,
            owed: record.owed + amount - charged,
            pending: None,
            version: record.version + 1,
            ..record
        };
        let written = self
            .engine
            .database()
            .storage_usage()
            .update(&settled)
            .await?;
        Ok(written.then_some(settled))
    }
}

/// A missing object is reported with its path.
fn object_error(e: Error, path: &str) -> Error {
    if e.kind() == ErrorKind::NotFound {
        Error::not_found(format!("no object at {path:?} in this workspace"))
            .with_context("path", path.to_owned())
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever the input, the check never panics, and what it accepts cannot leave the
        /// workspace or confuse a store: relative, no empty, `.` or `..` segment, no control
        /// character or backslash, within the byte bounds.
        #[test]
        fn accepted_paths_stay_beneath_their_workspace(path in "\\PC{0,40}|[a./\\\\%#0-9]{0,12}|.{0,1100}") {
            if validate_object_path(&path).is_ok() {
                proptest::prop_assert!(!path.is_empty() && path.len() <= MAX_PATH_BYTES);
                proptest::prop_assert!(!path.starts_with('/'));
                proptest::prop_assert!(!path.chars().any(|c| c.is_control() || c == '\\'));
                for segment in path.split('/') {
                    proptest::prop_assert!(!matches!(segment, "" | "." | ".."), "{path:?}");
                    proptest::prop_assert!(segment.len() <= MAX_SEGMENT_BYTES);
                }
            }
        }

        /// Paths made of ordinary segments are accepted.
        #[test]
        fn ordinary_paths_are_accepted(segments in proptest::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9_. -]{0,20}", 1..6)) {
            let path = segments.join("/");
            proptest::prop_assert!(validate_object_path(&path).is_ok(), "{path:?}");
        }
    }

    #[test]
    fn object_paths_that_could_escape_or_confuse_are_refused() {
        for ok in [
            "a",
            "data/train.csv",
            "ünï cödé/файл с пробелом.txt",
            "50% off.txt",
            "a#b",
            "x#",
        ] {
            assert!(
                validate_object_path(ok).is_ok(),
                "{ok:?} should be accepted"
            );
        }
        let long_segment = "a".repeat(256);
        let long_path = ["b"; 600].join("/");
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "leading"),
            ("../x", "`..`"),
            ("a/../../x", "`..`"),
            ("a/./b", "`..`"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("a\0b", "control"),
            ("a\nb", "control"),
            ("..\\x", "backslash"),
            ("%2e%2e/x", "percent"),
            ("a%2Fb", "percent"),
            ("file#12", "reserved"),
            (long_segment.as_str(), "segment is longer"),
            (long_path.as_str(), "longer than 1024"),
        ] {
            let e = validate_object_path(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert_eq!(e.field(), Some("path"));
            assert!(e.message().contains(why), "{bad:?}: {}", e.message());
        }
    }

    #[test]
    fn prefixes_may_end_in_a_partial_segment_or_a_slash() {
        for ok in ["", "data/", "data/tr", "rep"] {
            assert!(validate_prefix(ok).is_ok(), "{ok:?}");
        }
        for bad in ["/", "../", "a//", "/abs", "a/../b/"] {
            let e = validate_prefix(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert_eq!(e.field(), Some("prefix"));
        }
    }
}
