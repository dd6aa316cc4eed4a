//! The `StorageProvider` conformance suite on the local file system and in memory.

use std::sync::Arc;

use onmemos_backends::storage::ObjectStorage;
use onmemos_core::ports::StorageProvider;

mod local {
    use super::*;

    async fn fresh() -> Option<Arc<dyn StorageProvider>> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let store = onmemos_backends::storage::LocalStorage::open(&dir.keep())
            .unwrap_or_else(|e| panic!("local: {e}"));
        Some(Arc::new(store))
    }

    onmemos_core::storage_conformance!(|| fresh());
}

mod memory {
    use super::*;

    async fn fresh() -> Option<Arc<dyn StorageProvider>> {
        Some(Arc::new(ObjectStorage::memory()))
    }

    onmemos_core::storage_conformance!(|| fresh());
}

/// A store without multipart uploads of its own (memory, used plainly): uploads in parts are
/// staged as objects and streamed into place.
mod staged {
    use super::*;

    async fn fresh() -> Option<Arc<dyn StorageProvider>> {
        let store = Arc::new(object_store::memory::InMemory::new());
        Some(Arc::new(ObjectStorage::over("staged", store, "root")))
    }

    onmemos_core::storage_conformance!(|| fresh());
}
