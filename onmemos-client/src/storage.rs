//! `/v1/workspaces/{id}/files`: workspace storage, streamed both ways with progress.

use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use onmemos_types::api::{
    CreateUpload, ObjectListParams, Page, PresignRequest, PresignedUrl, StoredObject,
};
use onmemos_types::id::{UploadId, WorkspaceId};
use onmemos_types::model::{StorageUsage, Upload, UploadPart};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, header};
use tokio::io::AsyncWriteExt;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};

/// Called as bytes move: `(bytes done, total bytes when known)`.
pub type Progress = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// A stream of byte chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Transfers may take as long as the data needs: this bounds one upload or download (the
/// client's per-request timeout is for API calls).
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Chunks read from a local file per write.
const FILE_CHUNK: usize = 1024 * 1024;
/// Parts of a resumable upload sent at once.
const PARTS_IN_FLIGHT: usize = 3;

/// Characters escaped in an object path (`/` stays a separator).
const PATH_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// An object being downloaded.
pub struct Download {
    /// The object (its size is the whole object's, even for a range).
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

/// Workspace storage.
#[derive(Debug, Clone, Copy)]
pub struct Storage<'c> {
    client: &'c Client,
}

fn object_path(workspace: WorkspaceId, path: &str) -> String {
    format!(
        "/v1/workspaces/{workspace}/files/{}",
        utf8_percent_encode(path, PATH_ESCAPES)
    )
}

/// The object an answer describes, from its JSON body or (for `GET`/`HEAD`) its headers.
fn object_from_headers(path: &str, headers: &header::HeaderMap, size: u64) -> StoredObject {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    StoredObject {
        path: path.to_owned(),
        size,
        last_modified: text(header::LAST_MODIFIED)
            .and_then(|t| chrono::DateTime::parse_from_rfc2822(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default(),
        etag: text(header::ETAG).map(str::to_owned),
    }
}

/// Counts bytes through `stream`, reporting to `progress`.
fn counted<S>(stream: S, start: u64, total: Option<u64>, progress: Option<Progress>) -> ByteStream
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    let mut done = start;
    stream
        .inspect_ok(move |chunk| {
            done += chunk.len() as u64;
            if let Some(p) = &progress {
                p(done, total);
            }
        })
        .boxed()
}

/// A local file as a stream of chunks.
async fn file_stream(file: &Path) -> Result<(ByteStream, u64)> {
    let handle = tokio::fs::File::open(file)
        .await
        .map_err(|e| io_error(file, "open", e))?;
    let len = handle
        .metadata()
        .await
        .map_err(|e| io_error(file, "read", e))?
        .len();
    let name = file.to_path_buf();
    let stream = futures::stream::try_unfold(handle, move |mut handle| {
        let name = name.clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; FILE_CHUNK];
            let n = handle
                .read(&mut buf)
                .await
                .map_err(|e| io_error(&name, "read", e))?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), handle)))
        }
    });
    Ok((stream.boxed(), len))
}

/// Where part `number` of `upload` starts in the file, and its length.
fn part_span(upload: &Upload, number: u32) -> (u64, usize) {
    let start = u64::from(number) * upload.part_size;
    let len = upload.size.saturating_sub(start).min(upload.part_size);
    (start, usize::try_from(len).unwrap_or(usize::MAX))
}

/// `len` bytes of `file` from `start`.
async fn read_span(file: &Path, start: u64, len: usize) -> Result<Bytes> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut handle = tokio::fs::File::open(file)
        .await
        .map_err(|e| io_error(file, "open", e))?;
    handle
        .seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| io_error(file, "read", e))?;
    let mut buf = vec![0; len];
    handle
        .read_exact(&mut buf)
        .await
        .map_err(|e| io_error(file, "read (did it shrink?)", e))?;
    Ok(Bytes::from(buf))
}

fn io_error(file: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot {what} {}: {e}", file.display()),
    )
}

impl<'c> Storage<'c> {
    pub(crate) fn new(client: &'c Client) -> Self {
        Self { client }
    }

    /// Uploads `body` to `path`, streaming (the body is never held whole). `length`, when
    /// known, lets the server refuse an upload over the quota before it starts.
    pub async fn upload(
        &self,
        workspace: WorkspaceId,
        path: &str,
        body: ByteStream,
        length: Option<u64>,
        progress: Option<Progress>,
    ) -> Result<StoredObject> {
        let body = counted(body, 0, length, progress);
        let mut req = self
            .client
            .raw(Method::PUT, &object_path(workspace, path))
            .timeout(TRANSFER_TIMEOUT)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        if let Some(length) = length {
            req = req.header(header::CONTENT_LENGTH, length);
        }
        let resp = self.client.execute(req).await?;
        resp.json().await.map_err(Error::transport)
    }

    /// Uploads `bytes`, held in memory, to `path`.
    pub async fn upload_bytes(
        &self,
        workspace: WorkspaceId,
        path: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<StoredObject> {
        let bytes: Bytes = bytes.into();
        let length = bytes.len() as u64;
        let body: ByteStream = futures::stream::once(async move { Ok(bytes) }).boxed();
        self.upload(workspace, path, body, Some(length), None).await
    }

    /// Uploads the local file `file` to `path`.
    pub async fn upload_file(
        &self,
        workspace: WorkspaceId,
        path: &str,
        file: &Path,
        progress: Option<Progress>,
    ) -> Result<StoredObject> {
        let (stream, len) = file_stream(file).await?;
        self.upload(workspace, path, stream, Some(len), progress)
            .await
    }

    /// Starts a resumable upload of `request.size` bytes (see [`Self::upload_file_resumable`]
    /// for the whole procedure).
    pub async fn create_upload(
        &self,
        workspace: WorkspaceId,
        request: &CreateUpload,
    ) -> Result<Upload> {
        self.client
            .send_json(
                Method::POST,
                &format!("/v1/workspaces/{workspace}/uploads"),
                request,
            )
            .await
    }

    /// A resumable upload and the parts the server has.
    pub async fn upload_status(&self, workspace: WorkspaceId, upload: UploadId) -> Result<Upload> {
        self.client
            .get(&format!("/v1/workspaces/{workspace}/uploads/{upload}"))
            .await
    }

    /// Sends part `number` of an upload: exactly `upload.part_size` bytes (what is left, for
    /// the last part). Sending a part again replaces it.
    pub async fn put_part(
        &self,
        workspace: WorkspaceId,
        upload: UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<UploadPart> {
        let req = self
            .client
            .raw(
                Method::PUT,
                &format!("/v1/workspaces/{workspace}/uploads/{upload}/parts/{number}"),
            )
            .timeout(TRANSFER_TIMEOUT)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let resp = self.client.execute(req).await?;
        resp.json().await.map_err(Error::transport)
    }

    /// Assembles an upload whose parts all arrived into its object.
    pub async fn complete_upload(
        &self,
        workspace: WorkspaceId,
        upload: UploadId,
    ) -> Result<StoredObject> {
        let req = self
            .client
            .raw(
                Method::POST,
                &format!("/v1/workspaces/{workspace}/uploads/{upload}/complete"),
            )
            .timeout(TRANSFER_TIMEOUT);
        let resp = self.client.execute(req).await?;
        resp.json().await.map_err(Error::transport)
    }

    /// Abandons an upload and frees its parts.
    pub async fn abort_upload(&self, workspace: WorkspaceId, upload: UploadId) -> Result<()> {
        self.client
            .delete_path::<serde_json::Value>(&format!(
                "/v1/workspaces/{workspace}/uploads/{upload}"
            ))
            .await
            .map(|_| ())
    }

    /// Uploads the local file `file` to `path` in parts, so an interruption costs at most the
    /// parts in flight. With `resume`, the upload an earlier attempt started (for the same
    /// path and size) is continued and the parts the server has are not sent again; an
    /// upload the server no longer has is started over. `started` is told the upload before
    /// any part is sent, so the caller can keep its id for a later resume.
    pub async fn upload_file_resumable(
        &self,
        workspace: WorkspaceId,
        path: &str,
        file: &Path,
        resume: Option<UploadId>,
        started: impl FnOnce(&Upload),
        progress: Option<Progress>,
    ) -> Result<StoredObject> {
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|e| io_error(file, "read", e))?
            .len();
        let previous = match resume {
            Some(id) => match self.upload_status(workspace, id).await {
                Ok(upload) if upload.path == path && upload.size == size => Some(upload),
                Ok(_) => None,
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let upload = match previous {
            Some(upload) => upload,
            None => {
                let request = CreateUpload {
                    path: path.to_owned(),
                    size,
                    content_type: None,
                };
                self.create_upload(workspace, &request).await?
            }
        };
        started(&upload);
        let done = std::sync::atomic::AtomicU64::new(upload.parts.iter().map(|p| p.size).sum());
        let report = |n: u64| {
            let now = done.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n;
            if let Some(p) = &progress {
                p(now, Some(size));
            }
        };
        report(0);
        let parts = futures::stream::iter(upload.missing())
            .map(|number| {
                let (start, len) = part_span(&upload, number);
                async move {
                    let body = read_span(file, start, len).await?;
                    self.put_part(workspace, upload.id, number, body).await
                }
            })
            .buffer_unordered(PARTS_IN_FLIGHT);
        futures::pin_mut!(parts);
        while let Some(part) = parts.next().await {
            report(part?.size);
        }
        self.complete_upload(workspace, upload.id).await
    }

    /// Streams the object at `path`, or `range` of it.
    pub async fn download(
        &self,
        workspace: WorkspaceId,
        path: &str,
        range: Option<Range<u64>>,
    ) -> Result<Download> {
        let mut req = self
            .client
            .raw(Method::GET, &object_path(workspace, path))
            .timeout(TRANSFER_TIMEOUT);
        if let Some(r) = &range {
            if r.start >= r.end {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!("the range {}..{} is empty", r.start, r.end),
                ));
            }
            req = req.header(header::RANGE, format!("bytes={}-{}", r.start, r.end - 1));
        }
        let resp = self.client.execute(req).await?;
        let length = resp.content_length().unwrap_or_default();
        let (served, size) = match resp
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range)
        {
            Some((served, size)) => (served, size),
            None => (0..length, length),
        };
        let object = object_from_headers(path, resp.headers(), size);
        let body = resp.bytes_stream().map_err(Error::transport).boxed();
        Ok(Download {
            object,
            range: served,
            body,
        })
    }

    /// The whole object at `path`, read into memory.
    pub async fn read(&self, workspace: WorkspaceId, path: &str) -> Result<Bytes> {
        let download = self.download(workspace, path, None).await?;
        let mut bytes = bytes::BytesMut::with_capacity(
            usize::try_from(download.object.size).unwrap_or_default(),
        );
        let mut body = download.body;
        while let Some(chunk) = body.try_next().await? {
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes.freeze())
    }

    /// Downloads `path` into the local file `dest`. With `resume`, a `dest.part` left by an
    /// interrupted download of the same version of the object is continued, not restarted.
    pub async fn download_file(
        &self,
        workspace: WorkspaceId,
        path: &str,
        dest: &Path,
        resume: bool,
        progress: Option<Progress>,
    ) -> Result<StoredObject> {
        let object = self.head(workspace, path).await?;
        let beside = |suffix: &str| {
            let mut name = dest.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name)
        };
        let (part, tag) = (beside(".part"), beside(".part.etag"));
        let version = object.etag.clone().unwrap_or_default();
        let mut have = 0;
        if resume
            && !version.is_empty()
            && tokio::fs::read_to_string(&tag).await.ok().as_deref() == Some(version.as_str())
        {
            have = tokio::fs::metadata(&part)
                .await
                .map(|m| m.len())
                .unwrap_or(0);
        }
        if have > object.size {
            have = 0;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(have > 0)
            .truncate(have == 0)
            .open(&part)
            .await
            .map_err(|e| io_error(&part, "create", e))?;
        tokio::fs::write(&tag, &version)
            .await
            .map_err(|e| io_error(&tag, "write", e))?;
        if have < object.size {
            let got = self
                .download(workspace, path, Some(have..object.size))
                .await?;
            if got.object.etag != object.etag {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("{path} changed during the download; run it again"),
                ));
            }
            let mut body = counted(got.body, have, Some(object.size), progress);
            while let Some(chunk) = body.next().await {
                file.write_all(&chunk?)
                    .await
                    .map_err(|e| io_error(&part, "write", e))?;
            }
        }
        file.flush()
            .await
            .map_err(|e| io_error(&part, "write", e))?;
        drop(file);
        tokio::fs::rename(&part, dest)
            .await
            .map_err(|e| io_error(dest, "write", e))?;
        let _ = tokio::fs::remove_file(&tag).await;
        Ok(object)
    }

    /// The object's metadata.
    pub async fn head(&self, workspace: WorkspaceId, path: &str) -> Result<StoredObject> {
        let req = self.client.raw(Method::HEAD, &object_path(workspace, path));
        let resp = self.client.execute(req).await?;
        let size = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        Ok(object_from_headers(path, resp.headers(), size))
    }

    /// Deletes the object (deleting a missing object is not an error).
    pub async fn delete(&self, workspace: WorkspaceId, path: &str) -> Result<()> {
        self.client
            .delete_path::<serde_json::Value>(&object_path(workspace, path))
            .await
            .map(|_| ())
    }

    /// A page of the workspace's objects in path order.
    pub async fn list(
        &self,
        workspace: WorkspaceId,
        params: &ObjectListParams,
    ) -> Result<Page<StoredObject>> {
        self.client
            .get_with(&format!("/v1/workspaces/{workspace}/files"), params)
            .await
    }

    /// Every object of the workspace matching `params`, in path order, fetched a page at a
    /// time.
    pub fn list_all(
        &self,
        workspace: WorkspaceId,
        params: ObjectListParams,
    ) -> crate::stream::Items<StoredObject> {
        crate::stream::pages(
            self.client.clone(),
            format!("/v1/workspaces/{workspace}/files"),
            params,
        )
    }

    /// A URL that allows `GET` or `PUT` of one object straight at the object store.
    pub async fn presign(
        &self,
        workspace: WorkspaceId,
        request: &PresignRequest,
    ) -> Result<PresignedUrl> {
        self.client
            .send_json(
                Method::POST,
                &format!("/v1/workspaces/{workspace}/files:presign"),
                request,
            )
            .await
    }

    /// What the workspace stores, its quota and its storage bill.
    pub async fn usage(&self, workspace: WorkspaceId) -> Result<StorageUsage> {
        self.client
            .get(&format!("/v1/workspaces/{workspace}/storage"))
            .await
    }
}

/// `bytes a-b/size` → (a..b+1, size).
fn parse_content_range(value: &str) -> Option<(Range<u64>, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, size) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, size) = (
        a.parse::<u64>().ok()?,
        b.parse::<u64>().ok()?,
        size.parse().ok()?,
    );
    Some((a..b + 1, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_are_escaped_segment_by_segment() {
        let ws = WorkspaceId::new();
        assert_eq!(
            object_path(ws, "data/a b#1?.csv"),
            format!("/v1/workspaces/{ws}/files/data/a%20b%231%3F.csv")
        );
        assert_eq!(
            object_path(ws, "ünï/50%"),
            format!("/v1/workspaces/{ws}/files/%C3%BCn%C3%AF/50%25")
        );
    }

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0..10, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
    }
}
