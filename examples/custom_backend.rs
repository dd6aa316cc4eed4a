//! Your own object store behind OnMemOS: implement `StorageProvider`, run the conformance
//! suite on it, then hand it to the engine.
//!
//! The store here keeps objects in memory, in a `BTreeMap` (path order makes listing a range
//! scan); a real one would call your storage service where this touches the map. Everything
//! the engine relies on is in the trait's contract, and the suite checks each point: ranges,
//! etags, path-ordered pagination with cursors, conditional creates, atomic overwrites, uploads
//! in parts, refusing paths that leave the root, and `Unsupported` for what it cannot do.
//!
//! `cargo run --example custom_backend`

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use onmemos::core::api::ErrorCode;
use onmemos::core::ports::StorageProvider;
use onmemos::core::ports::storage::{
    ByteStream, GetOptions, GetResult, ListResult, ObjectMeta, PartUpload, PresignMethod,
    PutOptions, StorageCapabilities,
};
use onmemos::core::{Error, Result};

/// One stored object.
#[derive(Debug, Clone)]
struct Object {
    body: Bytes,
    modified: DateTime<Utc>,
    etag: String,
}

/// An upload in parts, not yet visible.
#[derive(Debug, Default)]
struct Parts {
    path: String,
    parts: BTreeMap<u32, Bytes>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Object>,
    uploads: HashMap<String, Parts>,
    version: u64,
}

/// Objects in memory, in path order.
#[derive(Debug, Default)]
struct MapStore {
    state: Mutex<State>,
}

/// Parts of an upload are this large (but the last).
const PART_SIZE: u64 = 8 * 1024 * 1024;

impl MapStore {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written object: every change is
        // one map operation.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn meta(path: &str, object: &Object) -> ObjectMeta {
        ObjectMeta {
            path: path.to_owned(),
            size: object.body.len() as u64,
            last_modified: object.modified,
            etag: Some(object.etag.clone()),
        }
    }

    /// Stores `body` at `path` in one step, so readers see the old object or the new one.
    fn commit(&self, path: &str, body: Bytes, if_absent: bool) -> Result<ObjectMeta> {
        let mut state = self.state();
        if if_absent && state.objects.contains_key(path) {
            return Err(Error::conflict(format!("{path} already exists")));
        }
        state.version += 1;
        let object = Object {
            body,
            modified: Utc::now(),
            etag: format!("\"v{}\"", state.version),
        };
        let meta = Self::meta(path, &object);
        state.objects.insert(path.to_owned(), object);
        Ok(meta)
    }

    fn object(&self, path: &str) -> Result<Object> {
        self.state()
            .objects
            .get(path)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no object at {path}")))
    }
}

/// Refuses paths that are empty or would leave the root (`..`, `.`, empty segments).
fn check_path(path: &str) -> Result<()> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(Error::invalid(
            "path",
            format!("{path:?} is not a valid object path"),
        ));
    }
    Ok(())
}

/// The bytes `range` asks of an object of `size`: clipped at the end, refused when empty or
/// starting at or past the end.
fn clip(range: Option<Range<u64>>, size: u64) -> Result<Range<u64>> {
    match range {
        None => Ok(0..size),
        Some(r) if r.start >= r.end || r.start >= size => Err(Error::with_code(
            ErrorCode::RangeNotSatisfiable,
            format!("range {}..{} of an object of {size} bytes", r.start, r.end),
        )),
        Some(r) => Ok(r.start..r.end.min(size)),
    }
}

#[async_trait]
impl StorageProvider for MapStore {
    fn capabilities(&self) -> StorageCapabilities {
        // Named, no presigned URLs, parts assembled here, copies without streaming, atomic
        // conditional creates.
        StorageCapabilities::new("map")
            .with_multipart(true)
            .with_server_side_copy(true)
            .with_conditional_put(true)
    }

    async fn put(&self, path: &str, body: ByteStream, options: PutOptions) -> Result<ObjectMeta> {
        check_path(path)?;
        // The whole body first: a stream that fails halfway stores nothing.
        let chunks: Vec<Bytes> = body.try_collect().await?;
        let mut whole = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
        for chunk in chunks {
            whole.extend_from_slice(&chunk);
        }
        self.commit(path, whole.freeze(), options.if_absent)
    }

    async fn get(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        let object = self.object(path)?;
        if let Some(expected) = &options.if_match
            && *expected != object.etag
        {
            return Err(Error::with_code(
                ErrorCode::PreconditionFailed,
                format!("{path} changed: its etag is {}", object.etag),
            ));
        }
        let size = object.body.len() as u64;
        let range = clip(options.range, size)?;
        let body = object.body.slice(range.start as usize..range.end as usize);
        Ok(GetResult {
            meta: Self::meta(path, &object),
            range,
            body: futures::stream::once(async move { Ok(body) }).boxed(),
        })
    }

    async fn head(&self, path: &str) -> Result<ObjectMeta> {
        Ok(Self::meta(path, &self.object(path)?))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListResult> {
        let state = self.state();
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.to_owned()),
            None => std::ops::Bound::Included(prefix.to_owned()),
        };
        let mut matching = state
            .objects
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(path, _)| path.starts_with(prefix));
        let objects: Vec<ObjectMeta> = matching
            .by_ref()
            .take(limit)
            .map(|(path, object)| Self::meta(path, object))
            .collect();
        // The cursor is the last path of a page that has a successor.
        let next = match matching.next() {
            Some(_) => objects.last().map(|o| o.path.clone()),
            None => None,
        };
        Ok(ListResult { objects, next })
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        check_path(to)?;
        let object = self.object(from)?;
        self.commit(to, object.body, false).map(drop)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.state().objects.remove(path);
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let mut state = self.state();
        let doomed: Vec<String> = state
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(path, _)| path.starts_with(prefix))
            .map(|(path, _)| path.clone())
            .collect();
        for path in &doomed {
            state.objects.remove(path);
        }
        Ok(doomed.len() as u64)
    }

    async fn presign(
        &self,
        _method: PresignMethod,
        path: &str,
        _expires_in: Duration,
    ) -> Result<String> {
        Err(Error::with_code(
            ErrorCode::Unsupported,
            format!("the map store cannot presign ({path})"),
        ))
    }

    async fn usage_bytes(&self, prefix: &str) -> Result<u64> {
        Ok(self
            .state()
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(path, _)| path.starts_with(prefix))
            .map(|(_, object)| object.body.len() as u64)
            .sum())
    }

    async fn create_upload(
        &self,
        path: &str,
        _size: u64,
        _content_type: Option<&str>,
    ) -> Result<PartUpload> {
        check_path(path)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        self.state().uploads.insert(
            id.clone(),
            Parts {
                path: path.to_owned(),
                parts: BTreeMap::new(),
            },
        );
        Ok(PartUpload {
            id,
            part_size: PART_SIZE,
        })
    }

    async fn put_part(
        &self,
        path: &str,
        upload: &PartUpload,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        let mut state = self.state();
        let parts = state
            .uploads
            .get_mut(&upload.id)
            .filter(|p| p.path == path)
            .ok_or_else(|| Error::not_found(format!("no upload {} of {path}", upload.id)))?;
        parts.parts.insert(number, body);
        Ok(format!("part-{number}"))
    }

    async fn complete_upload(
        &self,
        path: &str,
        upload: &PartUpload,
        tags: &[String],
    ) -> Result<ObjectMeta> {
        let parts = {
            let mut state = self.state();
            match state.uploads.get(&upload.id) {
                Some(p) if p.path == path => {}
                _ => {
                    return Err(Error::not_found(format!(
                        "no upload {} of {path}",
                        upload.id
                    )));
                }
            }
            state.uploads.remove(&upload.id).unwrap_or_default()
        };
        let mut whole = BytesMut::new();
        for (number, tag) in tags.iter().enumerate() {
            let number = number as u32;
            let part = parts
                .parts
                .get(&number)
                .filter(|_| *tag == format!("part-{number}"))
                .ok_or_else(|| Error::invalid("tags", format!("part {number} is missing")))?;
            whole.extend_from_slice(part);
        }
        self.commit(path, whole.freeze(), false)
    }

    async fn abort_upload(&self, _path: &str, upload: &PartUpload) -> Result<()> {
        self.state().uploads.remove(&upload.id);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn StorageProvider> = Arc::new(MapStore::default());

    // Every check of the suite, each panicking with what did not hold.
    let checks = onmemos::core::testing::storage::run_all(store.clone()).await;
    for check in &checks {
        println!("conformance: {check} ✓");
    }

    // The store is ready for the engine: workspaces' files now live in it.
    let dir = tempfile::tempdir()?;
    let db = onmemos::backends::db::connect(&format!(
        "sqlite://{}",
        dir.path().join("onmemos.db").display()
    ))
    .await?;
    let engine = onmemos::Engine::builder(db)
        .with_storage(store.clone())
        .build()
        .await?;
    let created = engine
        .users()
        .bootstrap(onmemos::core::api::CreateUser {
            email: "ada@example.com".into(),
            name: None,
            role: None,
        })
        .await?;
    let ada = onmemos::core::Principal::for_user(&created.user);
    let ws = engine
        .workspaces()
        .create(
            &ada,
            onmemos::core::api::CreateWorkspace {
                name: "on-my-store".into(),
                description: None,
                env: Default::default(),
            },
        )
        .await?;
    let body: ByteStream =
        futures::stream::once(async { Ok(Bytes::from_static(b"hello")) }).boxed();
    let stored = engine
        .storage()
        .upload(
            &ada,
            ws.id,
            "greeting.txt",
            body,
            onmemos::core::services::UploadOptions {
                length: Some(5),
                ..Default::default()
            },
        )
        .await?;
    println!(
        "stored {} ({} bytes) through the engine",
        stored.path, stored.size
    );
    // The engine keeps each workspace's files under its own prefix of the store.
    let prefix = onmemos::core::services::workspace_prefix(ws.id);
    let mine = store.head(&format!("{prefix}greeting.txt")).await?;
    assert_eq!(mine.size, 5, "the engine wrote to this store");
    println!("in the map as {}", mine.path);
    println!(
        "{} conformance checks held; the engine stores in the map",
        checks.len()
    );
    Ok(())
}
