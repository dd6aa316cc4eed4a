//! Workspace storage over HTTP: objects streamed both ways, with ranges and etags.

use std::ops::Range;
use std::time::Duration;

use crate::response::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use onmemos_core::Error;
use onmemos_core::api::{
    CreateUpload, ErrorBody, ErrorCode, ObjectListParams, Page, PresignRequest, PresignedUrl,
    StoredObject,
};
use onmemos_core::id::{UploadId, WorkspaceId};
use onmemos_core::model::{StorageUsage, Upload, UploadPart};
use onmemos_core::services::UploadOptions;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Authorized, needs};
use crate::state::AppState;

/// The workspace and the object path of a `/v1/workspaces/{workspace_id}/files/{*path}` route,
/// percent-decoded (the storage service then checks the path).
#[derive(Debug)]
pub(crate) struct ObjectPath {
    workspace: WorkspaceId,
    path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ObjectPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError(
                    Error::with_code(ErrorCode::InvalidParameter, e.body_text())
                        .with_context("field", "path"),
                )
            })?;
        let (mut workspace, mut path) = (None, None);
        for (name, value) in &params {
            match name {
                "workspace_id" => workspace = Some(value),
                "path" => path = Some(value),
                _ => {}
            }
        }
        let (Some(workspace), Some(path)) = (workspace, path) else {
            return Err(ApiError(Error::internal(
                "route lacks workspace_id or path",
            )));
        };
        Ok(Self {
            workspace: parse_param("workspace_id", workspace)?,
            path: path.to_owned(),
        })
    }
}

/// A path parameter parsed with `FromStr`; a bad one is a 400 naming it.
fn parse_param<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| {
        ApiError(
            Error::with_code(ErrorCode::InvalidParameter, format!("{name}: {e}"))
                .with_context("field", name.to_owned()),
        )
    })
}

/// The workspace, the upload and (on part routes) the part number of a
/// `/v1/workspaces/{workspace_id}/uploads/{upload_id}…` route.
#[derive(Debug)]
pub(crate) struct UploadPath {
    workspace: WorkspaceId,
    upload: UploadId,
    part: Option<u32>,
}

impl<S: Send + Sync> FromRequestParts<S> for UploadPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError(Error::with_code(ErrorCode::InvalidParameter, e.body_text())))?;
        let (mut workspace, mut upload, mut part) = (None, None, None);
        for (name, value) in &params {
            match name {
                "workspace_id" => workspace = Some(parse_param(name, value)?),
                "upload_id" => upload = Some(parse_param(name, value)?),
                "part" => part = Some(parse_param(name, value)?),
                _ => {}
            }
        }
        let (Some(workspace), Some(upload)) = (workspace, upload) else {
            return Err(ApiError(Error::internal(
                "route lacks workspace_id or upload_id",
            )));
        };
        Ok(Self {
            workspace,
            upload,
            part,
        })
    }
}

/// The `Content-Length` a request announced.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    let length = value
        .to_str()
        .ok()
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::with_code(
                ErrorCode::InvalidParameter,
                "Content-Length is not a number",
            )
            .with_context("field", "Content-Length")
        })?;
    Ok(Some(length))
}

/// Headers describing an object.
fn object_headers(object: &StoredObject) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(etag) = object
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(&quoted(e)).ok())
    {
        headers.insert(header::ETAG, etag);
    }
    let modified = object
        .last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(modified) = HeaderValue::from_str(&modified) {
        headers.insert(header::LAST_MODIFIED, modified);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers
}

/// An etag as HTTP sends it: quoted.
fn quoted(etag: &str) -> String {
    if etag.starts_with('"') || etag.starts_with("W/\"") {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

/// Whether an `If-None-Match` header matches `etag` (`*` matches any).
fn none_match(headers: &HeaderMap, etag: Option<&str>) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(etag) = etag.map(quoted) else {
        return value.trim() == "*";
    };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    value
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(&etag))
}

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// No range, or one this server ignores (several ranges): the whole object.
    Whole,
    /// These bytes.
    Part(Range<u64>),
    /// A range outside the object.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` (RFC 9110 §14.1.2); a malformed header is a
/// 400 naming it, several ranges are served whole.
fn requested_range(headers: &HeaderMap, size: u64) -> Ranged {
    // RFC 9110 §14.2: a Range the server does not understand — another unit, bad syntax,
    // several ranges — is ignored, and the whole object is sent.
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.trim().strip_prefix("bytes="))
        .filter(|spec| !spec.contains(','))
    else {
        return Ranged::Whole;
    };
    let Some((start, end)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        (true, true) => return Ranged::Whole,
        (true, false) => match number(end) {
            None => return Ranged::Whole,
            Some(0) => return Ranged::Unsatisfiable,
            Some(_) if size == 0 => return Ranged::Unsatisfiable,
            Some(suffix) => size.saturating_sub(suffix)..size,
        },
        (false, true) => match number(start) {
            None => return Ranged::Whole,
            Some(first) => first..size,
        },
        (false, false) => match (number(start), number(end)) {
            (Some(first), Some(last)) if last >= first => first..last.saturating_add(1).min(size),
            _ => return Ranged::Whole,
        },
    };
    if range.start >= size || range.start >= range.end {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(range)
}

/// A request body as a stream of chunks: a client that goes away, or stalls for longer than
/// `idle`, ends it with an error (the store then keeps nothing of the upload).
fn body_stream(body: Body, idle: Duration) -> onmemos_core::ports::storage::ByteStream {
    let chunks = body
        .into_data_stream()
        .map_err(|e| Error::invalid("body", format!("the upload was interrupted: {e}")));
    futures::stream::unfold(Box::pin(chunks), move |mut chunks| async move {
        match tokio::time::timeout(idle, chunks.next()).await {
            Ok(Some(item)) => Some((item, chunks)),
            Ok(None) => None,
            Err(_) => Some((
                Err(Error::with_code(
                    ErrorCode::RequestTimeout,
                    format!("no upload data arrived for {} s", idle.as_secs()),
                )),
                chunks,
            )),
        }
    })
    .boxed()
}

/// Stores the request body at `path` in the workspace, streaming it to the object store.
/// `If-None-Match: *` creates only if absent. An upload over the workspace's quota is refused
/// (`quota_exceeded`, before any byte is read when `Content-Length` is sent), and an upload
/// that fails halfway leaves nothing behind.
#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/files/{*path}", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"),
        ("path" = String, Path, description = "The object's path inside the workspace"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only if absent")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = StoredObject), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn put_object(
    State(s): State<AppState>,
    Auth(p): Auth,
    object: ObjectPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let upload = UploadOptions {
        length: content_length(&headers)?,
        content_type: text(header::CONTENT_TYPE).map(str::to_owned),
        if_absent: text(header::IF_NONE_MATCH).is_some_and(|v| v.trim() == "*"),
    };
    let idle = Duration::from_secs(s.config.request_timeout_secs.max(1));
    let stored = s
        .engine
        .storage()
        .upload(
            &p,
            object.workspace,
            &object.path,
            body_stream(body, idle),
            upload,
        )
        .await?;
    let headers = object_headers(&stored);
    Ok((StatusCode::CREATED, headers, Json(stored)).into_response())
}

/// Streams an object, or the part a `Range` header asks for (206). `If-None-Match` with the
/// current etag answers 304.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/files/{*path}", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"),
        ("path" = String, Path, description = "The object's path inside the workspace"),
        ("Range" = Option<String>, Header, description = "`bytes=start-end`, `bytes=start-` or `bytes=-suffix`; any other value is ignored and the whole object is sent"),
        ("If-None-Match" = Option<String>, Header, description = "Etags the caller has")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "Not modified"),
        (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_object(
    State(s): State<AppState>,
    Auth(p): Auth,
    object: ObjectPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let storage = s.engine.storage();
    let meta = storage.head(&p, object.workspace, &object.path).await?;
    if none_match(&headers, meta.etag.as_deref()) {
        return Ok((StatusCode::NOT_MODIFIED, object_headers(&meta)).into_response());
    }
    let range = match requested_range(&headers, meta.size) {
        Ranged::Whole => None,
        Ranged::Part(range) => Some(range),
        Ranged::Unsatisfiable => {
            let mut response = ApiError(Error::with_code(
                ErrorCode::RangeNotSatisfiable,
                format!("the object has {} bytes", meta.size),
            ))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let partial = range.is_some();
    // Pinned to the version just read: a concurrent overwrite fails the read instead of
    // mixing two versions' headers and bytes.
    let download = storage
        .download(&p, object.workspace, &object.path, range, meta.etag.clone())
        .await?;
    let mut out = object_headers(&download.object);
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // An uploaded page must never run in the API's origin: never sniffed, always a download.
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    let served = download.range.clone();
    out.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(served.end - served.start),
    );
    let status = if partial {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            served.start,
            served.end.saturating_sub(1),
            download.object.size
        )) {
            out.insert(header::CONTENT_RANGE, v);
        }
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    // Chunks the store has ready are sent together: fewer, larger writes.
    let body = download.body.ready_chunks(64).map(|chunks| {
        let mut out = bytes::BytesMut::new();
        for chunk in chunks {
            out.extend_from_slice(&chunk.map_err(std::io::Error::other)?);
        }
        Ok::<_, std::io::Error>(out.freeze())
    });
    let body = Body::from_stream(body);
    Ok((status, out, body).into_response())
}

/// An object's size, etag and modification time, as headers.
#[utoipa::path(head, path = "/v1/workspaces/{workspace_id}/files/{*path}", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"),
        ("path" = String, Path, description = "The object's path inside the workspace")),
    responses((status = 200, description = "The object exists"),
        (status = "4XX", description = "No such object (404), or the request was refused; a HEAD answer has no body")))]
pub(crate) async fn head_object(
    State(s): State<AppState>,
    Auth(p): Auth,
    object: ObjectPath,
) -> Result<Response, ApiError> {
    let meta = s
        .engine
        .storage()
        .head(&p, object.workspace, &object.path)
        .await?;
    let mut headers = object_headers(&meta);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    Ok((StatusCode::OK, headers).into_response())
}

/// Deletes an object (deleting a missing object is not an error).
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/files/{*path}", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"),
        ("path" = String, Path, description = "The object's path inside the workspace")),
    responses((status = 204, description = "Deleted"), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn delete_object(
    State(s): State<AppState>,
    Auth(p): Auth,
    object: ObjectPath,
) -> Result<StatusCode, ApiError> {
    s.engine
        .storage()
        .delete(&p, object.workspace, &object.path)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a workspace's objects in path order, optionally under a prefix.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/files", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"), ObjectListParams),
    responses((status = 200, body = Page<StoredObject>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn list_objects(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiQuery(q): ApiQuery<ObjectListParams>,
) -> Result<Json<Page<StoredObject>>, ApiError> {
    Ok(Json(s.engine.storage().list(&p, id, &q).await?))
}

/// A URL that allows `GET` or `PUT` of one object straight at the object store until it
/// expires (stores that cannot presign answer `unsupported`).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/files:presign", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id")),
    request_body = PresignRequest,
    responses((status = 200, body = PresignedUrl), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn presign(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::StorageRead>,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiJson(body): ApiJson<PresignRequest>,
) -> Result<Json<PresignedUrl>, ApiError> {
    Ok(Json(s.engine.storage().presign(&p, id, &body).await?))
}

/// What a workspace stores, its quota and its storage bill.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/storage", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id")),
    responses((status = 200, body = StorageUsage), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn usage(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> Result<Json<StorageUsage>, ApiError> {
    Ok(Json(s.engine.storage().usage(&p, id).await?))
}

/// Starts a resumable upload of an object in parts. The answer says how large each part must
/// be; the object's whole size counts against the quota until the upload ends (an upload
/// left incomplete is abandoned after `storage.upload_ttl_secs`).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/uploads", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id")),
    request_body = CreateUpload,
    responses((status = 201, body = Upload), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn create_upload(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::StorageWrite>,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiJson(body): ApiJson<CreateUpload>,
) -> Result<(StatusCode, Json<Upload>), ApiError> {
    let upload = s.engine.storage().create_upload(&p, id, &body).await?;
    Ok((StatusCode::CREATED, Json(upload)))
}

/// A resumable upload and the parts it received (what a client resumes from).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/uploads/{upload_id}", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"),
        ("upload_id" = UploadId, Path, description = "The upload's id")),
    responses((status = 200, body = Upload), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_upload(
    State(s): State<AppState>,
    Auth(p): Auth,
    at: UploadPath,
) -> Result<Json<Upload>, ApiError> {
    let upload = s
        .engine
        .storage()
        .upload_status(&p, at.workspace, at.upload)
        .await?;
    Ok(Json(upload))
}

/// Abandons a resumable upload and frees its parts.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/uploads/{upload_id}", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"),
        ("upload_id" = UploadId, Path, description = "The upload's id")),
    responses((status = 204, description = "Abandoned"), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn abort_upload(
    State(s): State<AppState>,
    Auth(p): Auth,
    at: UploadPath,
) -> Result<StatusCode, ApiError> {
    s.engine
        .storage()
        .abort_upload(&p, at.workspace, at.upload)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores one part of a resumable upload: exactly `part_size` bytes (what is left, for the
/// last part). Sending a part again replaces it.
#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/uploads/{upload_id}/parts/{part}", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"),
        ("upload_id" = UploadId, Path, description = "The upload's id"),
        ("part" = u32, Path, description = "The part's number, from 0")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = UploadPart), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn put_part(
    State(s): State<AppState>,
    Auth(p): Auth,
    at: UploadPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadPart>, ApiError> {
    let Some(number) = at.part else {
        return Err(ApiError(Error::internal("route lacks part")));
    };
    let idle = Duration::from_secs(s.config.request_timeout_secs.max(1));
    let part = s
        .engine
        .storage()
        .put_part(
            &p,
            at.workspace,
            at.upload,
            number,
            content_length(&headers)?,
            body_stream(body, idle),
        )
        .await?;
    Ok(Json(part))
}

/// Assembles a resumable upload whose parts all arrived into its object (409 naming the
/// missing parts otherwise).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/uploads/{upload_id}/complete", tag = "storage",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id"),
        ("upload_id" = UploadId, Path, description = "The upload's id")),
    responses((status = 201, body = StoredObject), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn complete_upload(
    State(s): State<AppState>,
    Auth(p): Auth,
    at: UploadPath,
) -> Result<Response, ApiError> {
    let stored = s
        .engine
        .storage()
        .complete_upload(&p, at.workspace, at.upload)
        .await?;
    let headers = object_headers(&stored);
    Ok((StatusCode::CREATED, headers, Json(stored)).into_response())
}

/// Whether a request carries an object or a part of one, whose handler reads the whole body
/// and so is not bound by the request timeout (its body has an idle timeout instead).
pub(crate) fn is_upload(method: &http::Method, path: &str) -> bool {
    method == http::Method::PUT
        && path.starts_with("/v1/workspaces/")
        && (path.contains("/files/") || path.contains("/parts/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::RANGE,
            HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    proptest::proptest! {
        /// Any header, any size: never a panic, and a part is always inside the object.
        #[test]
        fn a_range_is_inside_the_object_or_not_taken(header in "bytes=[-0-9,]{0,30}|.{0,40}", size in 0u64..5000) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = header.parse() {
                headers.insert(axum::http::header::RANGE, value);
            }
            if let Ranged::Part(r) = requested_range(&headers, size) {
                proptest::prop_assert!(r.start < r.end && r.end <= size, "{header}: {r:?} of {size}");
            }
        }

        /// `bytes=a-b` inside the object is exactly bytes a to b.
        #[test]
        fn a_closed_range_is_taken_as_written(a in 0u64..1000, len in 0u64..1000, size in 1u64..3000) {
            let b = a + len;
            let got = requested_range(&with_range(&format!("bytes={a}-{b}")), size);
            let want = if a >= size { Ranged::Unsatisfiable } else { Ranged::Part(a..(b + 1).min(size)) };
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        let size = 1000;
        let cases = [
            ("bytes=0-9", Ranged::Part(0..10)),
            ("bytes=990-", Ranged::Part(990..1000)),
            ("bytes=-10", Ranged::Part(990..1000)),
            ("bytes=-5000", Ranged::Part(0..1000)),
            ("bytes=500-99999", Ranged::Part(500..1000)),
            ("bytes=1000-", Ranged::Unsatisfiable),
            ("bytes=-0", Ranged::Unsatisfiable),
            ("bytes=0-1,5-6", Ranged::Whole),
        ];
        for (header, want) in cases {
            assert_eq!(requested_range(&with_range(header), size), want, "{header}");
        }
        assert_eq!(
            requested_range(&with_range("bytes=0-"), 0),
            Ranged::Unsatisfiable
        );
        // What the server does not understand is ignored: the whole object.
        for odd in [
            "bytes=",
            "bytes=a-b",
            "items=0-1",
            "bytes=9-3",
            "bytes=-",
            "bytes=5",
        ] {
            assert_eq!(
                requested_range(&with_range(odd), size),
                Ranged::Whole,
                "{odd}"
            );
        }
        assert_eq!(requested_range(&HeaderMap::new(), size), Ranged::Whole);
    }

    #[test]
    fn if_none_match_compares_etags_weakly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(none_match(&h, Some("\"b\"")));
        assert!(none_match(&h, Some("a")));
        assert!(!none_match(&h, Some("\"c\"")));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&h, Some("\"x\"")));
        assert!(!none_match(&HeaderMap::new(), Some("\"x\"")));
    }
}
