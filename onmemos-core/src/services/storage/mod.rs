//! Workspace storage: objects under each workspace's own prefix of the object store, within a
//! quota, billed per GiB-month from usage samples.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;

use crate::Engine;
use crate::api::{
    ErrorCode, ObjectListParams, Page, PresignMethod, PresignRequest, PresignedUrl, StoredObject,
};
use crate::error::{Error, ErrorKind, Result};
use crate::id::WorkspaceId;
use crate::model::{Scope, StorageUsage, Workspace};
use crate::ports::StorageProvider;
use crate::ports::storage::{self, ByteStream, GetOptions, ObjectMeta, PutOptions};
use crate::principal::Principal;

mod billing;
mod paths;
mod quota;
mod uploads;

pub use paths::{
    DEFAULT_LIST_LIMIT, DEFAULT_PRESIGN_SECS, MAX_LIST_LIMIT, validate_object_path,
    workspace_prefix,
};
use paths::{object_key, validate_prefix};
use quota::{Reservation, quota_exceeded};

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
        let counter = self.engine.shared().uploads.counter(id);
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
