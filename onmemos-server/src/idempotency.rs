//! `Idempotency-Key` on every POST: the first request with a key runs and its response is
//! stored; a replay gets the stored response with `idempotent-replayed: true`; the same key
//! with another request gets 422 `idempotency_key_reused`; a duplicate while the first is
//! still running gets 409 `idempotency_in_flight`. Server errors (5xx) are not stored, so the
//! request can be retried.
//!
//! A replay is the same request **by the same API key with the same authority**: records are
//! filed under the key that made them, and the request's identity covers the method, path,
//! query, body (JSON compared as data, so whitespace and key order do not matter), and the
//! caller's role and scopes. Another key, or the same key after its authority changed, never
//! sees a stored answer: it gets `idempotency_key_reused`, and nothing runs.
//!
//! Stored answers can hold secrets (a created API key's, once). They are kept encrypted
//! (ChaCha20-Poly1305) under a key derived from the client's `Idempotency-Key`, which the
//! database never holds: records are filed under a SHA-256 of it. Whoever reads the database
//! reads no answer; the client that sent the key gets its answer back whole.
//!
//! The middleware sits outside the error renderer, so what it stores is the final response.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chrono::Duration;
use onmemos_core::Error;
use onmemos_core::api::ErrorCode;
use onmemos_core::ports::{IdempotencyBegin, StoredResponse};
use onmemos_core::principal::Principal;
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

/// The request's idempotency key, checked: one header of 1–255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError(Error::invalid(
            "Idempotency-Key",
            "send one Idempotency-Key header, not several",
        )));
    }
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
    let hash = request_hash(&parts, &bytes, &principal);
    let (key, sealer) = (record_key(&principal, &key), Sealer::new(&principal, &key));
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
        IdempotencyBegin::Replay(stored) => return replay(stored, &sealer),
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
            body: sealer.seal(&body)?,
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

fn replay(stored: StoredResponse, sealer: &Sealer) -> Result<Response, ApiError> {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, sealer.open(&stored.body)?).into_response();
    let headers = response.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&stored.content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

/// Who a record belongs to: the API key (or, for callers without one, the user).
fn owner(principal: &Principal) -> String {
    match principal.key_id() {
        Some(key) => format!("key:{key}"),
        None => format!("user:{}", principal.user_id()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest naming what `label` is for, of the record's owner and the client's key.
fn owned_digest(label: &str, principal: &Principal, key: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [label, &owner(principal), key] {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().into()
}

/// The record's name in the database: a digest of its owner and the client's key, so the
/// client's key itself (the answer's encryption key) is never stored.
fn record_key(principal: &Principal, key: &str) -> String {
    hex(&owned_digest("onmemos idempotency record", principal, key))
}

/// What makes two requests the same: method, path, query, the body (a JSON body as data:
/// parsed and written again, so spacing and key order do not count), and the caller's
/// authority (role and scopes), so a replay is only ever an answer the caller may have.
fn request_hash(parts: &axum::http::request::Parts, body: &[u8], principal: &Principal) -> String {
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"?");
    hasher.update(parts.uri.query().unwrap_or_default().as_bytes());
    hasher.update(b"\n");
    let mut scopes: Vec<&str> = principal.scopes().iter().map(|s| s.as_str()).collect();
    scopes.sort_unstable();
    hasher.update(format!("{}:{}\n", principal.role().as_str(), scopes.join(",")).as_bytes());
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => {
            hasher.update(b"json:");
            hasher.update(value.to_string().as_bytes());
        }
        Err(_) => {
            hasher.update(b"raw:");
            hasher.update(body);
        }
    }
    hex(&hasher.finalize())
}

/// Encrypts stored answers under a key derived from the client's idempotency key and the
/// record's owner.
struct Sealer(ChaCha20Poly1305);

impl Sealer {
    fn new(principal: &Principal, key: &str) -> Self {
        let secret = owned_digest("onmemos idempotency answer", principal, key);
        Self(ChaCha20Poly1305::new(&secret.into()))
    }

    /// `nonce ‖ ciphertext`, base64.
    fn seal(&self, body: &[u8]) -> Result<String, ApiError> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(&nonce, body)
            .map_err(|_| ApiError(Error::internal("could not seal a stored response")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    fn open(&self, stored: &str) -> Result<Vec<u8>, ApiError> {
        let broken = || ApiError(Error::internal("a stored response could not be opened"));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(stored)
            .map_err(|_| broken())?;
        let (nonce, sealed) = raw.split_first_chunk::<12>().ok_or_else(broken)?;
        self.0
            .decrypt(&Nonce::from(*nonce), sealed)
            .map_err(|_| broken())
    }
}
