use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use crate::response::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use onmemos_core::api::{
    CreateSession, ErrorBody, EventListParams, ExecCommand, ExecOutput, ExecStreamLine, Page,
    SessionListParams,
};
use onmemos_core::id::SessionId;
use onmemos_core::model::{Session, SessionEvent};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Authorized, needs};
use crate::state::AppState;

/// Starts a session: quotes it, holds the credits for its first billing window, starts its
/// compute. A start that fails leaves a `failed` session (listed, with the reason) and holds
/// nothing.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSession,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Session), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn create_session(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::SessionsWrite>,
    ApiJson(body): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(s.engine.sessions().create(&p, body).await?),
    ))
}

/// Lists the caller's sessions, oldest first, by workspace, status or template.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", params(SessionListParams),
    responses((status = 200, body = Page<Session>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn list_sessions(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SessionListParams>,
) -> Result<Json<Page<Session>>, ApiError> {
    Ok(Json(s.engine.sessions().list(&p, &q).await?))
}

/// One of the caller's sessions.
#[utoipa::path(get, path = "/v1/sessions/{session_id}", tag = "sessions",
    params(("session_id" = SessionId, Path, description = "The session's id")),
    responses((status = 200, body = Session), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_session(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<SessionId>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(s.engine.sessions().get(&p, id).await?))
}

/// Deletes a session that has ended, with its events.
#[utoipa::path(delete, path = "/v1/sessions/{session_id}", tag = "sessions",
    params(("session_id" = SessionId, Path, description = "The session's id")),
    responses((status = 204, description = "Deleted"), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn delete_session(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<SessionId>,
) -> Result<StatusCode, ApiError> {
    s.engine.sessions().delete(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops a session, charging it up to now (stopping an ended session returns it unchanged).
#[utoipa::path(post, path = "/v1/sessions/{session_id}/stop", tag = "sessions",
    params(("session_id" = SessionId, Path, description = "The session's id")),
    responses((status = 200, body = Session), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn stop_session(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<SessionId>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(s.engine.sessions().stop(&p, id).await?))
}

/// Runs a command in a running session and returns its output and exit code.
#[utoipa::path(post, path = "/v1/sessions/{session_id}/exec", tag = "sessions",
    params(("session_id" = SessionId, Path, description = "The session's id")),
    request_body = ExecCommand,
    responses((status = 200, body = ExecOutput), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn exec(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::SessionsWrite>,
    ApiPath(id): ApiPath<SessionId>,
    ApiJson(body): ApiJson<ExecCommand>,
) -> Result<Json<ExecOutput>, ApiError> {
    Ok(Json(s.engine.sessions().exec(&p, id, body).await?))
}

/// Runs a command and streams its output as newline-delimited JSON (`stdout`, `stderr`, then
/// one `exit` line). Output is byte-exact: a character is never cut across lines, and bytes
/// that are not UTF-8 come as base64 (`"encoding": "base64"`).
#[utoipa::path(post, path = "/v1/sessions/{session_id}/exec/stream", tag = "sessions",
    params(("session_id" = SessionId, Path, description = "The session's id")),
    request_body = ExecCommand,
    responses((status = 200, body = ExecStreamLine, content_type = "application/x-ndjson"),
        (status = "4XX", body = ErrorBody)))]
pub(crate) async fn exec_stream(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::SessionsWrite>,
    ApiPath(id): ApiPath<SessionId>,
    ApiJson(body): ApiJson<ExecCommand>,
) -> Result<Response, ApiError> {
    let lines = s.engine.sessions().exec_lines(&p, id, body).await?;
    let lines = lines.map(|line| {
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        Ok::<_, Infallible>(text)
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// The session's events, oldest first (`after` a `seq` to page on).
#[utoipa::path(get, path = "/v1/sessions/{session_id}/events", tag = "sessions",
    params(("session_id" = SessionId, Path, description = "The session's id"), EventListParams),
    responses((status = 200, body = Vec<SessionEvent>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn events(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<SessionId>,
    ApiQuery(q): ApiQuery<EventListParams>,
) -> Result<Json<Vec<SessionEvent>>, ApiError> {
    Ok(Json(s.engine.sessions().events(&p, id, &q).await?))
}

/// The session's events as server-sent events: those after `after`, then new ones as they
/// happen (from any replica), until the session ends.
#[utoipa::path(get, path = "/v1/sessions/{session_id}/events/stream", tag = "sessions",
    params(("session_id" = SessionId, Path, description = "The session's id"), EventListParams),
    responses((status = 200, body = SessionEvent, content_type = "text/event-stream"),
        (status = "4XX", body = ErrorBody)))]
pub(crate) async fn event_stream(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<SessionId>,
    ApiQuery(q): ApiQuery<EventListParams>,
) -> Result<Response, ApiError> {
    // Checks ownership and the parameters before the stream starts.
    s.engine.sessions().events(&p, id, &q).await?;
    let follow = Follow {
        state: s,
        caller: p,
        session: id,
        after: q.after.unwrap_or(0),
        pending: VecDeque::new(),
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        let sse = Event::default()
            .id(event.seq.to_string())
            .event(event.kind.name())
            .json_data(&event)
            .unwrap_or_default();
        Some((Ok::<_, Infallible>(sse), follow))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Follows a session's events from `after` until its final one.
struct Follow {
    state: AppState,
    caller: onmemos_core::Principal,
    session: SessionId,
    after: u64,
    pending: VecDeque<SessionEvent>,
    done: bool,
}

impl Follow {
    /// The next event; `None` after the final one, or when the session can no longer be read.
    async fn next(&mut self) -> Option<SessionEvent> {
        let sessions = self.state.engine.sessions();
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.after = event.seq;
                self.done = event.kind.is_final();
                return Some(event);
            }
            if self.done {
                return None;
            }
            // Subscribed before reading, so an event made here in between still wakes us.
            let mut wake = sessions.subscribe();
            let params = EventListParams {
                after: Some(self.after),
                limit: Some(1000),
            };
            let found = sessions
                .events(&self.caller, self.session, &params)
                .await
                .ok()?;
            if found.is_empty() {
                // Woken by an event made here, or polling for those of other replicas.
                let _ = tokio::time::timeout(Duration::from_millis(500), wake.recv()).await;
            }
            self.pending.extend(found);
        }
    }
}

/// Whether a request is a synchronous exec (`POST /v1/sessions/{id}/exec`).
pub(crate) fn is_exec(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::POST
        && path
            .strip_prefix("/v1/sessions/")
            .and_then(|rest| rest.strip_suffix("/exec"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}
