//! The storage quota: bytes stored, plus bytes being uploaded on this server, reserved before
//! they are written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{StorageService, workspace_prefix};
use crate::api::ErrorCode;
use crate::error::{Error, ErrorKind, Result};
use crate::id::WorkspaceId;
use crate::ports::StorageProvider;

/// The bytes one upload has counted in its workspace's in-flight total; released when the
/// upload ends, however it ends.
pub(super) struct Reservation {
    pub(super) counter: Arc<AtomicU64>,
    pub(super) mine: u64,
}

impl Reservation {
    /// Counts `n` more bytes; returns the workspace's in-flight total.
    pub(super) fn add(&mut self, n: u64) -> u64 {
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

pub(super) fn quota_exceeded(workspace: WorkspaceId, would: u64, quota: u64) -> Error {
    Error::with_code(
        ErrorCode::QuotaExceeded,
        format!(
            "workspace {workspace} would hold {would} bytes, over its storage quota of {quota} bytes"
        ),
    )
    .with_context("quota_bytes", quota.to_string())
}

impl StorageService<'_> {
    /// The bytes workspace `id` holds or has promised, not counting the object at `key` (which
    /// an upload replaces): stored objects plus resumable uploads in progress.
    pub(super) async fn committed_bytes(
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
}
