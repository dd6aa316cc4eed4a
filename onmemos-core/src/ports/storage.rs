//! The `StorageProvider` port: the object store behind workspace storage.
//!
//! Implementations wrap the `object_store` crate (local disk, memory, S3, GCS, Azure Blob).
//! Paths are relative to the provider's root; the storage service confines each workspace to its
//! own prefix before calling the port.

use std::fmt::Debug;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::Stream;

use crate::error::Result;

/// A stream of byte chunks (uploads and downloads are never buffered whole).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// What a storage implementation supports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageCapabilities {
    /// The implementation's name (`local`, `memory`, `s3`, `gcs`, `azure`).
    pub name: &'static str,
    /// Whether presigned URLs can be issued.
    pub presign: bool,
    /// Whether uploads in parts ([`PartUpload`]) are assembled by the store itself; without
    /// it the parts are staged as objects and copied into place when the upload completes.
    pub multipart: bool,
    /// Whether copies happen inside the store without streaming through the server.
    pub server_side_copy: bool,
    /// Whether `put` with `if_absent` is atomic.
    pub conditional_put: bool,
}

impl StorageCapabilities {
    /// A store named `name` that supports nothing optional; say what it does with the `with_*`
    /// methods, by name (`StorageCapabilities::new("s3").with_presign(true)`).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            presign: false,
            multipart: false,
            server_side_copy: false,
            conditional_put: false,
        }
    }

    /// The same, saying whether presigned URLs can be issued.
    pub fn with_presign(mut self, presign: bool) -> Self {
        self.presign = presign;
        self
    }

    /// The same, saying whether the store assembles uploads in parts itself.
    pub fn with_multipart(mut self, multipart: bool) -> Self {
        self.multipart = multipart;
        self
    }

    /// The same, saying whether copies happen inside the store.
    pub fn with_server_side_copy(mut self, server_side_copy: bool) -> Self {
        self.server_side_copy = server_side_copy;
        self
    }

    /// The same, saying whether `put` with `if_absent` is atomic.
    pub fn with_conditional_put(mut self, conditional_put: bool) -> Self {
        self.conditional_put = conditional_put;
        self
    }
}

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The path, relative to the provider's root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
    /// The store's entity tag, when it has one.
    pub etag: Option<String>,
}

/// Options of a `put`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Fail with `Conflict` if the object exists.
    pub if_absent: bool,
    /// The content type to record.
    pub content_type: Option<String>,
}

/// Options of a `get`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Only these bytes (clipped to the object's end; a range starting at or past the end is a
    /// `range_not_satisfiable` error).
    pub range: Option<Range<u64>>,
    /// Fail with `precondition_failed` unless the object's etag equals this.
    pub if_match: Option<String>,
}

/// The answer of a `get`: metadata and the (range of the) content as a stream.
pub struct GetResult {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// The bytes that were returned.
    pub range: Range<u64>,
    /// The content.
    pub body: ByteStream,
}

impl Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// The objects of this page, ordered by path.
    pub objects: Vec<ObjectMeta>,
    /// Pass as `after` to continue; absent on the last page.
    pub next: Option<String>,
}

/// The HTTP method a presigned URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresignMethod {
    /// Download.
    Get,
    /// Upload.
    Put,
}

/// An upload in parts that a client can resume: parts are written one request each, in any
/// order, and the object appears only when the upload is completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartUpload {
    /// The store's id of the upload.
    pub id: String,
    /// The size every part but the last must have.
    pub part_size: u64,
}

impl PartUpload {
    /// The store's handle of a recorded upload.
    pub fn of(record: &crate::model::UploadRecord) -> Self {
        Self {
            id: record.store_upload_id.clone(),
            part_size: record.part_size,
        }
    }
}

/// The most parts one upload has (S3's limit): larger objects get larger parts.
pub const MAX_PARTS: u64 = 10_000;

impl PartUpload {
    /// The part size for `size` bytes in parts of at least `preferred` bytes.
    pub fn part_size_for(size: u64, preferred: u64) -> u64 {
        preferred.max(size.div_ceil(MAX_PARTS)).max(1)
    }
}

/// An object store.
#[async_trait]
pub trait StorageProvider: Send + Sync + Debug + 'static {
    /// What this implementation supports.
    fn capabilities(&self) -> StorageCapabilities;
    /// Writes an object from a stream (in parts above the implementation's threshold).
    async fn put(&self, path: &str, body: ByteStream, options: PutOptions) -> Result<ObjectMeta>;
    /// Reads an object, or a range of it, as a stream.
    async fn get(&self, path: &str, options: GetOptions) -> Result<GetResult>;
    /// An object's metadata.
    async fn head(&self, path: &str) -> Result<ObjectMeta>;
    /// Up to `limit` objects whose paths start with `prefix` (as strings: `rep` matches
    /// `report.txt`) and sort after `after`, in path order.
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListResult>;
    /// Copies an object.
    async fn copy(&self, from: &str, to: &str) -> Result<()>;
    /// Deletes an object (deleting a missing object is not an error).
    async fn delete(&self, path: &str) -> Result<()>;
    /// Deletes every object under `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;
    /// A URL that allows `method` on `path` without credentials until `expires_in` passes.
    async fn presign(
        &self,
        method: PresignMethod,
        path: &str,
        expires_in: Duration,
    ) -> Result<String>;
    /// The total size in bytes of the objects under `prefix`.
    async fn usage_bytes(&self, prefix: &str) -> Result<u64>;
    /// [`Self::usage_bytes`] of each of `prefixes`, in their order (a billing batch measures
    /// all of its workspaces at once). The default measures one after another.
    async fn usage_bytes_of(&self, prefixes: &[String]) -> Result<Vec<u64>> {
        let mut bytes = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            bytes.push(self.usage_bytes(prefix).await?);
        }
        Ok(bytes)
    }
    /// Starts an upload of `size` bytes to `path` in parts (see [`PartUpload`]); the store
    /// picks the part size. Content types are kept where the store records them.
    async fn create_upload(
        &self,
        path: &str,
        size: u64,
        content_type: Option<&str>,
    ) -> Result<PartUpload> {
        let _ = (size, content_type);
        Err(unsupported_upload(path))
    }
    /// Writes part `number` (from 0) of `upload`: bytes `number × part_size` on, exactly
    /// `part_size` of them but for the last part. Returns the tag that
    /// [`StorageProvider::complete_upload`] needs for it. Writing a part again replaces it.
    async fn put_part(
        &self,
        path: &str,
        upload: &PartUpload,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        let _ = (upload, number, body);
        Err(unsupported_upload(path))
    }
    /// Assembles the parts, given by their tags in order, into the object at `path`.
    async fn complete_upload(
        &self,
        path: &str,
        upload: &PartUpload,
        parts: &[String],
    ) -> Result<ObjectMeta> {
        let _ = (upload, parts);
        Err(unsupported_upload(path))
    }
    /// Abandons an upload and frees its parts.
    async fn abort_upload(&self, path: &str, upload: &PartUpload) -> Result<()> {
        let _ = upload;
        Err(unsupported_upload(path))
    }
    /// The directory on this machine that holds the objects under `prefix` as files, when the
    /// store keeps them that way (the local file system), so local sessions can see them.
    fn local_dir(&self, prefix: &str) -> Option<std::path::PathBuf> {
        let _ = prefix;
        None
    }
    /// The bucket and key prefix that hold the objects under `prefix`, when the store is a
    /// cloud object store, so a compute can mount them with its CSI driver.
    fn bucket(&self, prefix: &str) -> Option<crate::ports::compute::BucketMount> {
        let _ = prefix;
        None
    }
}

fn unsupported_upload(path: &str) -> crate::Error {
    crate::Error::with_code(
        crate::api::ErrorCode::Unsupported,
        format!("this store cannot upload {path:?} in parts"),
    )
}
