//! [`ObjectStorage`]: the `StorageProvider` port over any `object_store` store.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
#[cfg(feature = "cloud-storage")]
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutPayload,
    WriteMultipart,
};
use onmemos_core::api::ErrorCode;
use onmemos_core::ports::storage::{
    ByteStream, GetOptions, GetResult, ListResult, ObjectMeta, PartUpload, PresignMethod,
    PutOptions,
};
use onmemos_core::ports::{StorageCapabilities, StorageProvider};
use onmemos_core::{Error, Result};

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
        }
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

#[async_trait]
impl StorageProvider for ObjectStorage {
    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities::new(self.name)
            .with_presign(self.can_presign())
            .with_multipart(self.multipart.is_some())
            .with_server_side_copy(true)
            .with_conditional_put(true)
    }

    async fn put(
        &self,
        path: &str,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<ObjectMeta> {
        let location = self.location(path)?;
        let mut attributes = Attributes::new();
        if let Some(content_type) = options.content_type.filter(|_| self.attributes) {
            attributes.insert(Attribute::ContentType, content_type.into());
        }
        // Read the first part: a body that ends within it is written in one request.
        let mut first = Vec::new();
        let mut size = 0;
        let mut ended = false;
        while size < self.part_size {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    size += chunk.len();
                    first.push(chunk);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            let mode = if options.if_absent {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            let put = object_store::PutOptions {
                mode,
                attributes,
                ..Default::default()
            };
            self.store
                .put_opts(&location, PutPayload::from_iter(first), put)
                .await
                .map_err(|e| store_error(e, path))?;
        } else if options.if_absent {
            // Assemble the object out of sight, then copy it into place only if absent.
            if !self.copy_if_absent {
                return Err(Error::with_code(
                    ErrorCode::Unsupported,
                    format!(
                        "this {} store cannot create objects larger than {} bytes only if absent",
                        self.name, self.part_size
                    ),
                ));
            }
            if self.head(path).await.is_ok() {
                return Err(Error::conflict(format!("an object exists at {path:?}")));
            }
            let staged = self.location(&format!("{STAGING}/{}", uuid::Uuid::now_v7()))?;
            self.put_parts(&staged, first, body, attributes).await?;
            let copied = self.store.copy_if_not_exists(&staged, &location).await;
            if let Err(e) = self.store.delete(&staged).await {
                tracing::warn!(path = %staged, error = %e, "a staged upload could not be removed");
            }
            copied.map_err(|e| store_error(e, path))?;
        } else {
            self.put_parts(&location, first, body, attributes).await?;
        }
        self.head(path).await
    }

    async fn get(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        let location = self.location(path)?;
        if let Some(range) = &options.range
            && range.start >= range.end
        {
            return Err(Error::with_code(
                ErrorCode::RangeNotSatisfiable,
                format!("the range {}..{} is empty", range.start, range.end),
            ));
        }
        let get = object_store::GetOptions {
            range: options.range.clone().map(GetRange::Bounded),
            if_match: options.if_match.clone(),
            ..Default::default()
        };
        let result = match self.store.get_opts(&location, get).await {
            Ok(result) => result,
            Err(e) => {
                // Stores report a range past the end in their own words: say it in ours.
                if let (Some(range), false) = (
                    &options.range,
                    matches!(
                        e,
                        object_store::Error::NotFound { .. }
                            | object_store::Error::Precondition { .. }
                    ),
                ) && let Ok(meta) = self.head(path).await
                    && range.start >= meta.size
                {
                    return Err(unsatisfiable(range, meta.size));
                }
                return Err(store_error(e, path));
            }
        };
        let meta = self.meta(result.meta.clone());
        // Checked here too: not every store (or emulator) honours `If-Match` on reads.
        if let Some(expected) = &options.if_match
            && meta.etag.as_ref() != Some(expected)
        {
            return Err(store_error(
                object_store::Error::Precondition {
                    path: path.to_owned(),
                    source: "the etag differs".into(),
                },
                path,
            ));
        }
        let range = result.range.clone();
        let owned = path.to_owned();
        let body = result
            .into_stream()
            .map_err(move |e| store_error(e, &owned))
            .boxed();
        Ok(GetResult { meta, range, body })
    }

    async fn head(&self, path: &str) -> Result<ObjectMeta> {
        let location = self.location(path)?;
        let meta = self
            .store
            .head(&location)
            .await
            .map_err(|e| store_error(e, path))?;
        Ok(self.meta(meta))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListResult> {
        let stream = self.objects_under(prefix, after)?;
        let mut objects: Vec<ObjectMeta> = stream.take(limit + 1).try_collect().await?;
        let next = if objects.len() > limit {
            objects.truncate(limit);
            objects.last().map(|o| o.path.clone())
        } else {
            None
        };
        Ok(ListResult { objects, next })
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (source, target) = (self.location(from)?, self.location(to)?);
        self.store
            .copy(&source, &target)
            .await
            .map_err(|e| store_error(e, from))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let location = self.location(path)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e, path)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let locations = self
            .objects_under(prefix, None)?
            .map_ok(|meta| meta.path)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .map(|p| self.location(&p))
            .collect::<Result<Vec<_>>>()?;
        let count = locations.len() as u64;
        let deleted = self
            .store
            .delete_stream(futures_util::stream::iter(locations.into_iter().map(Ok)).boxed());
        deleted
            .try_for_each(|_| futures_util::future::ready(Ok(())))
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(store_error(e, prefix)),
            })?;
        Ok(count)
    }

    async fn presign(
        &self,
        method: PresignMethod,
        path: &str,
        expires_in: Duration,
    ) -> Result<String> {
        #[cfg(feature = "cloud-storage")]
        if let Some(signer) = &self.signer {
            return self.signed(&**signer, method, path, expires_in).await;
        }
        let _ = (method, path, expires_in);
        Err(Error::with_code(
            ErrorCode::Unsupported,
            format!("the {} store cannot presign URLs", self.name),
        ))
    }

    async fn usage_bytes(&self, prefix: &str) -> Result<u64> {
        self.objects_under(prefix, None)?
            .try_fold(0u64, |sum, meta| {
                futures_util::future::ready(Ok(sum + meta.size))
            })
            .await
    }

    async fn create_upload(
        &self,
        path: &str,
        size: u64,
        content_type: Option<&str>,
    ) -> Result<PartUpload> {
        let location = self.location(path)?;
        let part_size = PartUpload::part_size_for(size, self.part_size as u64);
        let Some(multipart) = &self.multipart else {
            let id = uuid::Uuid::now_v7().to_string();
            return Ok(PartUpload { id, part_size });
        };
        let mut attributes = Attributes::new();
        if let Some(content_type) = content_type.filter(|_| self.attributes) {
            attributes.insert(Attribute::ContentType, content_type.to_owned().into());
        }
        let created = match multipart
            .create_multipart_opts(&location, attributes.into())
            .await
        {
            // Azure keeps no attributes on uploads in parts: the content type is dropped.
            Err(object_store::Error::NotSupported { .. }) => {
                multipart.create_multipart(&location).await
            }
            created => created,
        };
        let id = created.map_err(|e| store_error(e, path))?;
        Ok(PartUpload { id, part_size })
    }

    async fn put_part(
        &self,
        path: &str,
        upload: &PartUpload,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        let location = self.location(path)?;
        let Some(multipart) = &self.multipart else {
            let dir = Self::staged_upload(&upload.id)?;
            let part = staged_part(&dir, number);
            self.store
                .put(&self.location(&part)?, body.into())
                .await
                .map_err(|e| store_error(e, path))?;
            return Ok(number.to_string());
        };
        let part = multipart
            .put_part(&location, &upload.id, number as usize, body.into())
            .await
            .map_err(|e| store_error(e, path))?;
        Ok(part.content_id)
    }

    async fn complete_upload(
        &self,
        path: &str,
        upload: &PartUpload,
        parts: &[String],
    ) -> Result<ObjectMeta> {
        let location = self.location(path)?;
        let Some(multipart) = &self.multipart else {
            let dir = Self::staged_upload(&upload.id)?;
            // The staged parts, read in order, are one more streamed put.
            let names = parts
                .iter()
                .map(|tag| {
                    let number: u32 = tag
                        .parse()
                        .map_err(|_| Error::internal(format!("a staged part tag {tag:?}")))?;
                    Ok(staged_part(&dir, number))
                })
                .collect::<Result<Vec<_>>>()?;
            let this = self.clone();
            let body = futures_util::stream::iter(names)
                .then(move |name| {
                    let this = this.clone();
                    async move { this.get(&name, GetOptions::default()).await.map(|g| g.body) }
                })
                .try_flatten()
                .boxed();
            let meta = self.put(path, body, PutOptions::default()).await?;
            self.abort_upload(path, upload).await?;
            return Ok(meta);
        };
        let parts = parts
            .iter()
            .map(|tag| PartId {
                content_id: tag.clone(),
            })
            .collect();
        multipart
            .complete_multipart(&location, &upload.id, parts)
            .await
            .map_err(|e| store_error(e, path))?;
        self.head(path).await
    }

    async fn abort_upload(&self, path: &str, upload: &PartUpload) -> Result<()> {
        let location = self.location(path)?;
        let Some(multipart) = &self.multipart else {
            let dir = Self::staged_upload(&upload.id)?;
            self.delete_prefix(&dir).await?;
            return Ok(());
        };
        match multipart.abort_multipart(&location, &upload.id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e, path)),
        }
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

/// Installs ring as the process's TLS provider unless one is installed already (the HTTP
/// client of the cloud stores is built without a provider of its own).
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Applies `options` to a builder through its `with_config`, naming an unknown key.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn configure<B, K>(
    url: &str,
    mut builder: B,
    options: &super::StorageOptions,
    with: impl Fn(B, K, &str) -> B,
) -> Result<B>
where
    K: std::str::FromStr,
{
    for (key, value) in options {
        let key_parsed: K = key.parse().map_err(|_| {
            Error::configuration(format!("storage option `{key}` is not one {url:?} knows"))
        })?;
        builder = with(builder, key_parsed, value);
    }
    Ok(builder)
}

/// The storage over a built cloud store, which also presigns.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn cloud_storage<S: ObjectStore + Signer + MultipartStore>(
    name: &'static str,
    url: &str,
    root: &str,
    built: object_store::Result<S>,
) -> Result<Arc<dyn StorageProvider>> {
    let store =
        Arc::new(built.map_err(|e| Error::configuration(format!("storage_url {url:?}: {e}")))?);
    Ok(Arc::new(
        ObjectStorage::over(name, store.clone(), root)
            .with_signer(store.clone())
            .with_multipart(store),
    ))
}

/// Defines the constructor `$fn` of a cloud store: its builder from the environment, for
/// `bucket`, then `options` by key, plus any `$extra` builder calls.
macro_rules! cloud_constructor {
    ($(#[$doc:meta])* $feature:literal, $fn:ident, $name:literal, $builder:ty, $key:ty, $bucket:ident $(, $extra:expr)?) => {
        $(#[$doc])*
        #[cfg(feature = $feature)]
        pub(super) fn $fn(
            url: &str,
            bucket: &str,
            root: &str,
            options: &super::StorageOptions,
        ) -> Result<Arc<dyn StorageProvider>> {
            tls_provider();
            let builder = <$builder>::from_env().$bucket(bucket);
            $(let builder = $extra(builder);)?
            let builder = configure(url, builder, options, |b, k: $key, v| b.with_config(k, v))?;
            cloud_storage($name, url, root, builder.build())
        }
    };
}

cloud_constructor!(
    /// An S3 bucket (or an S3-compatible store given by the `endpoint` option). Conditional
    /// creates of large objects use `copy_if_not_exists`, by default the multipart way (S3's
    /// conditional `CompleteMultipartUpload`).
    "s3", s3, "s3", object_store::aws::AmazonS3Builder, object_store::aws::AmazonS3ConfigKey,
    with_bucket_name,
    |b: object_store::aws::AmazonS3Builder| b.with_copy_if_not_exists(
        object_store::aws::S3CopyIfNotExists::Multipart
    )
);
cloud_constructor!(
    /// A GCS bucket (the `base_url` option points at another endpoint).
    "gcs", gcs, "gcs", object_store::gcp::GoogleCloudStorageBuilder,
    object_store::gcp::GoogleConfigKey, with_bucket_name
);
cloud_constructor!(
    /// An Azure Blob container (the `endpoint` option points at another endpoint, e.g.
    /// Azurite).
    "azure", azure, "azure", object_store::azure::MicrosoftAzureBuilder,
    object_store::azure::AzureConfigKey, with_container_name
);
