//! [`ObjectStorage`]: the `StorageProvider` port over any `object_store` store.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use onmemos_core::ports::compute::{BucketMount, BucketStore};
#[cfg(feature = "cloud-storage")]
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
#[cfg(feature = "cloud-storage")]
use object_store::signer::Signer;
use object_store::{Attributes, ObjectStore, WriteMultipart};
use onmemos_core::api::ErrorCode;
#[cfg(feature = "cloud-storage")]
use onmemos_core::ports::storage::PresignMethod;
use onmemos_core::ports::storage::{ByteStream, ObjectMeta};
use onmemos_core::{Error, Result};

mod provider;

/// Uploads larger than this go in parts of this size (S3's minimum part is 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once: the memory an upload holds is about this many parts.
const PARTS_IN_FLIGHT: usize = 3;
/// Where conditional creates larger than one part are assembled before they are copied into
/// place, under the store's root.
const STAGING: &str = ".onmemos-staging";

/// A `StorageProvider` over an `object_store` store, under an optional root prefix.
#[derive(Clone)]
pub struct ObjectStorage {
    name: &'static str,
    store: Arc<dyn ObjectStore>,
    #[cfg(feature = "cloud-storage")]
    signer: Option<Arc<dyn Signer>>,
    /// The store's own uploads in parts, when it has them; otherwise parts are staged as
    /// objects and streamed into place on completion.
    multipart: Option<Arc<dyn MultipartStore>>,
    /// The prefix every path is placed under (no leading or trailing `/`), `""` for none.
    root: String,
    /// Whether `copy_if_not_exists` works (needed for conditional creates of large objects).
    copy_if_absent: bool,
    /// Whether the store records attributes such as the content type.
    attributes: bool,
    part_size: usize,
    /// The cloud bucket behind the store, for computes that mount it.
    bucket: Option<(BucketStore, String)>,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("name", &self.name)
            .field("store", &self.store.to_string())
            .field("root", &self.root)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// A store kept in memory (gone when the process ends).
    pub fn memory() -> Self {
        let store = Arc::new(object_store::memory::InMemory::new());
        Self::over("memory", store.clone(), "").with_multipart(store)
    }

    /// Any `object_store` store, named `name`, with every path under `root`. Stores listing
    /// in path order and supporting `copy_if_not_exists` are assumed; see
    /// the `with_` methods.
    pub fn over(name: &'static str, store: Arc<dyn ObjectStore>, root: &str) -> Self {
        Self {
            name,
            store,
            #[cfg(feature = "cloud-storage")]
            signer: None,
            multipart: None,
            root: root.trim_matches('/').to_owned(),
            copy_if_absent: true,
            attributes: true,
            part_size: DEFAULT_PART_SIZE,
            bucket: None,
        }
    }

    /// Says which cloud bucket the store is, so computes can mount the workspaces' prefixes
    /// with their CSI drivers.
    pub fn with_bucket(mut self, store: BucketStore, bucket: &str) -> Self {
        self.bucket = Some((store, bucket.to_owned()));
        self
    }

    /// The bucket and key prefix of the objects under `prefix`, when the store is a bucket.
    pub(crate) fn bucket_mount(&self, prefix: &str) -> Option<BucketMount> {
        let (store, bucket) = self.bucket.clone()?;
        let prefix = prefix.trim_matches('/');
        let prefix = if self.root.is_empty() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.root)
        };
        Some(BucketMount {
            store,
            bucket,
            prefix,
        })
    }

    /// Issues presigned URLs with `signer` (usually the same store).
    #[cfg(feature = "cloud-storage")]
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Resumable uploads use the store's own multipart uploads through `store` (usually the
    /// same store) instead of staged parts.
    pub fn with_multipart(mut self, store: Arc<dyn MultipartStore>) -> Self {
        self.multipart = Some(store);
        self
    }

    /// Uploads larger than `bytes` go in parts of `bytes` (at least 5 MiB for S3).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// Says whether the store supports `copy_if_not_exists`.
    pub fn with_copy_if_absent(mut self, supported: bool) -> Self {
        self.copy_if_absent = supported;
        self
    }

    fn can_presign(&self) -> bool {
        #[cfg(feature = "cloud-storage")]
        return self.signer.is_some();
        #[cfg(not(feature = "cloud-storage"))]
        false
    }

    #[cfg(feature = "cloud-storage")]
    async fn signed(
        &self,
        signer: &dyn Signer,
        method: PresignMethod,
        path: &str,
        expires_in: Duration,
    ) -> Result<String> {
        let location = self.location(path)?;
        let method = match method {
            PresignMethod::Get => http::Method::GET,
            PresignMethod::Put => http::Method::PUT,
        };
        let url = signer
            .signed_url(method, &location, expires_in)
            .await
            .map_err(|e| store_error(e, path))?;
        Ok(url.to_string())
    }

    /// The store's location of `path`, which must be a valid object path.
    fn location(&self, path: &str) -> Result<Path> {
        let full = if self.root.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.root)
        };
        Path::parse(&full).map_err(|e| Error::invalid("path", format!("{path:?}: {e}")))
    }

    /// `path` relative to the root.
    fn relative<'a>(&self, location: &'a Path) -> &'a str {
        let raw = location.as_ref();
        if self.root.is_empty() {
            raw
        } else {
            raw.strip_prefix(self.root.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(raw)
        }
    }

    fn meta(&self, meta: object_store::ObjectMeta) -> ObjectMeta {
        ObjectMeta {
            path: self.relative(&meta.location).to_owned(),
            size: meta.size,
            last_modified: meta.last_modified,
            etag: meta.e_tag,
        }
    }

    /// Every object whose path starts with `prefix` (as a string), after `after`: the listing
    /// of the directory `prefix` lies in, filtered.
    fn objects_under(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<ObjectMeta>>> {
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let dir = if self.root.is_empty() {
            dir.to_owned()
        } else if dir.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{dir}", self.root)
        };
        let dir = Path::parse(&dir).map_err(|e| Error::invalid("prefix", e.to_string()))?;
        let stream = match after {
            Some(after) => self
                .store
                .list_with_offset(Some(&dir), &self.location(after)?),
            None => self.store.list(Some(&dir)),
        };
        let this = self.clone();
        let prefix = prefix.to_owned();
        let after = after.map(str::to_owned);
        Ok(stream
            .map_err(|e| store_error(e, "listing"))
            .try_filter_map(move |m| {
                let meta = this.meta(m);
                let keep = meta.path.starts_with(&prefix)
                    && (!meta.path.starts_with(STAGING) || prefix.starts_with(STAGING))
                    && after.as_deref().is_none_or(|a| meta.path.as_str() > a);
                futures_util::future::ready(Ok(keep.then_some(meta)))
            })
            .boxed())
    }

    /// Where the parts of the staged upload `upload` are kept (the id is one this storage
    /// made: a UUID, never a path).
    fn staged_upload(upload: &str) -> Result<String> {
        let id = uuid::Uuid::parse_str(upload)
            .map_err(|_| Error::not_found(format!("no upload {upload:?}")))?;
        Ok(format!("{STAGING}/uploads/{id}/"))
    }

    /// Writes `first` then the rest of `body` to `location` in parts; aborts (leaving nothing)
    /// when the body fails.
    async fn put_parts(
        &self,
        location: &Path,
        first: Vec<Bytes>,
        mut body: ByteStream,
        attributes: Attributes,
    ) -> Result<()> {
        let upload = self
            .store
            .put_multipart_opts(location, attributes.into())
            .await
            .map_err(|e| store_error(e, location.as_ref()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        for chunk in first {
            writer.put(chunk);
        }
        loop {
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(store_error(e, location.as_ref()));
            }
            match body.next().await {
                Some(Ok(chunk)) => writer.put(chunk),
                Some(Err(e)) => {
                    if let Err(abort) = writer.abort().await {
                        tracing::warn!(path = %location, error = %abort, "an interrupted upload could not be aborted");
                    }
                    return Err(e);
                }
                None => break,
            }
        }
        writer
            .finish()
            .await
            .map_err(|e| store_error(e, location.as_ref()))?;
        Ok(())
    }
}

/// The core error for an `object_store` error about `path`.
fn store_error(error: object_store::Error, path: &str) -> Error {
    use object_store::Error as E;
    match error {
        E::NotFound { .. } => Error::not_found(format!("no object at {path:?}")),
        E::AlreadyExists { .. } => Error::conflict(format!("an object exists at {path:?}")),
        E::Precondition { .. } => Error::with_code(
            ErrorCode::PreconditionFailed,
            format!("the object at {path:?} changed"),
        ),
        E::InvalidPath { source } => Error::invalid("path", format!("{path:?}: {source}")),
        e @ (E::NotSupported { .. } | E::NotImplemented { .. }) => {
            Error::with_code(ErrorCode::Unsupported, e.to_string())
        }
        e @ (E::PermissionDenied { .. } | E::Unauthenticated { .. }) => Error::configuration(
            format!("the object store refused this server's credentials: {e}"),
        ),
        // The store's own words name URLs, buckets or files of the server: they go to the log
        // (as the source), not into the answer.
        e => Error::unavailable(format!(
            "the object store could not serve {path:?}; try again"
        ))
        .with_source(e),
    }
}

/// The staged object holding part `number` of the upload staged in `dir`.
fn staged_part(dir: &str, number: u32) -> String {
    format!("{dir}{number:05}")
}

fn unsatisfiable(range: &Range<u64>, size: u64) -> Error {
    Error::with_code(
        ErrorCode::RangeNotSatisfiable,
        format!(
            "the range {}..{} starts at or past the end of the object ({size} bytes)",
            range.start, range.end
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_store_names_the_workspace_prefix_under_its_root_and_others_name_none() {
        let memory = || Arc::new(object_store::memory::InMemory::new()) as Arc<dyn ObjectStore>;
        let rooted = ObjectStorage::over("gcs", memory(), "/tenants/acme/")
            .with_bucket(BucketStore::Gcs, "files");
        assert_eq!(
            rooted.bucket_mount("workspaces/ws_1/"),
            Some(BucketMount {
                store: BucketStore::Gcs,
                bucket: "files".into(),
                prefix: "tenants/acme/workspaces/ws_1".into(),
            })
        );
        let bare = ObjectStorage::over("s3", memory(), "")
            .with_bucket(BucketStore::S3 { region: None }, "files");
        assert_eq!(
            bare.bucket_mount("workspaces/ws_1/").map(|m| m.prefix),
            Some("workspaces/ws_1".into())
        );
        assert_eq!(
            ObjectStorage::over("memory", memory(), "").bucket_mount("x/"),
            None
        );
    }
}
