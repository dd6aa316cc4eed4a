//! The `StorageProvider` port of [`ObjectStorage`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::multipart::PartId;
use object_store::{
    Attribute, Attributes, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutPayload,
};
use onmemos_core::api::ErrorCode;
use onmemos_core::ports::storage::{
    ByteStream, GetOptions, GetResult, ListResult, ObjectMeta, PartUpload, PresignMethod,
    PutOptions,
};
use onmemos_core::ports::{StorageCapabilities, StorageProvider};
use onmemos_core::{Error, Result};

use super::{ObjectStorage, STAGING, staged_part, store_error, unsatisfiable};

#[async_trait]
impl StorageProvider for ObjectStorage {
    fn bucket(&self, prefix: &str) -> Option<onmemos_core::ports::compute::BucketMount> {
        self.bucket_mount(prefix)
    }

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
