//! `Idempotency-Key` on every POST: the first request with a key runs and its response is
//! stored; a replay (same user, key, method, path and body) gets the stored response with
//! `idempotent-replayed: true`; the same key with another request gets 422
//! `idempotency_key_reused`; a duplicate while the first is still running gets 409
//! `idempotency_in_flight`. Server errors (5xx) are not stored, so the request can be retried.
//!
//! The middleware sits outside the error renderer, so what it stores is the final response.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use onmemos_core::Error;
use onmemos_core::api::ErrorCode;
use onmemos_core::ports::{IdempotencyBegin, StoredResponse};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, render, request_id};
use crate::state::AppState;

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header set on replays.
pub const REPLAYED: &str = "idempotent-replayed";
/// A claim that never completed (its server died) may be taken over after this long.
const STALE_AFTER_SECS: i64 = 60;
/// Longest stored response.
const MAX_STORED_RESPONSE: usize = 1024 * 1024;

/// The request's idempotency key, checked: 1–255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| b.is_ascii_graphic()));
    match text {
        Some(t) => Ok(Some(t.to_owned())),
        None => Err(ApiError(Error::invalid(
            "Idempotency-Key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ))),
    }
}

pub(crate) async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(IDEMPOTENCY_KEY) {
        return next.run(request).await;
    }
    let request_id = request_id(&request);
    match run(state, request, next).await {
        Ok(response) => response,
        Err(e) => render(e, &request_id),
    }
}

async fn run(state: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    let key = idempotency_key(request.headers())?.unwrap_or_default();
    let (mut parts, body) = request.into_parts();
    // The key is per user: authenticate now (the handler reuses the result).
    let crate::extract::Auth(principal) =
        <crate::extract::Auth as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, &state,
        )
        .await?;
    let bytes = to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError(Error::with_code(
                ErrorCode::PayloadTooLarge,
                "request body is larger than the server accepts",
            ))
        })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"?");
    hasher.update(parts.uri.query().unwrap_or_default().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let repo = state.engine.database().idempotency();
    let user = principal.user_id();
    let now = state.engine.clock().now();
    match repo
        .begin(user, &key, &hash, now, Duration::seconds(STALE_AFTER_SECS))
        .await?
    {
        IdempotencyBegin::Started => {}
        IdempotencyBegin::InFlight => {
            return Err(ApiError(Error::with_code(
                ErrorCode::IdempotencyInFlight,
                "a request with this Idempotency-Key is still being processed",
            )));
        }
        IdempotencyBegin::Mismatch => {
            return Err(ApiError(
                Error::with_code(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was already used with a different request",
                )
                .with_context("field", "Idempotency-Key"),
            ));
        }
        IdempotencyBegin::Replay(stored) => return Ok(replay(stored)),
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    if is_stream(&parts.headers) {
        // A stream (exec output, events) is not stored: it passes through as it is made, and
        // the key is released.
        repo.abandon(user, &key).await?;
        return Ok(Response::from_parts(parts, body));
    }
    let body = match to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(b) => b,
        Err(_) => {
            repo.abandon(user, &key).await?;
            return Err(ApiError(Error::internal(
                "response too large to store for idempotency",
            )));
        }
    };
    if parts.status.is_server_error() {
        repo.abandon(user, &key).await?;
    } else {
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        repo.complete(user, &key, &stored).await?;
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Whether a response is a stream (newline-delimited JSON or server-sent events).
fn is_stream(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/x-ndjson") || ct.starts_with("text/event-stream")
        })
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&stored.content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
