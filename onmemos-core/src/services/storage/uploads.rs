//! Resumable uploads in parts: create, put parts in any order, complete or abort; abandoned
//! ones expire.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::{StorageService, object_key, quota_exceeded, validate_object_path};
use crate::api::{CreateUpload, ErrorCode, StoredObject};
use crate::error::{Error, Result};
use crate::id::{UploadId, WorkspaceId};
use crate::model::{Scope, Upload, UploadPart, UploadRecord};
use crate::ports::StorageProvider;
use crate::ports::storage::{ByteStream, PartUpload};
use crate::principal::Principal;

impl StorageService<'_> {
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
        let in_flight = self
            .engine
            .shared()
            .uploads
            .counter(id)
            .load(Ordering::SeqCst);
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
            .shared()
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
}
