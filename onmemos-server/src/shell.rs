//! The shell WebSocket: `GET /v1/sessions/{id}/shell` (SPEC §6).
//!
//! A thin adapter over the engine's terminals ([`onmemos_core::services::TerminalService`]):
//! each socket is one [`Terminal`] attachment. The engine keeps one PTY per session, its
//! scrollback (64 KiB) and the re-attach within the grace period; a socket that comes back
//! first receives the scrollback, or, when it says how much output it already has (`offset`),
//! only the output it missed.
//!
//! Frames: binary both ways carry terminal bytes; text frames carry JSON control messages
//! ([`ShellClientFrame`] in, [`ShellServerFrame`] out). A malformed control frame gets an
//! `error` frame and changes nothing. Limit warnings arrive as `notice`; when the session
//! stops, a `notice` and an `exit` with the stop reason, then the server closes the socket.

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use onmemos_core::api::{ShellClientFrame, ShellServerFrame};
use onmemos_core::id::SessionId;
use onmemos_core::model::SessionEventKind;
use onmemos_core::ports::compute::PtySize;
use onmemos_core::services::{SCROLLBACK_BYTES, Terminal, TerminalEnd};
use onmemos_core::{Engine, Error, Principal};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Auth};
use crate::state::AppState;

/// The largest WebSocket frame or message a shell socket takes (keystrokes and pastes are far
/// smaller; a larger one closes the socket with 1009).
pub const MAX_SHELL_MESSAGE: usize = 64 * 1024;

/// The terminal size a socket starts with.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ShellParams {
    /// Rows (default 24).
    #[param(maximum = 65_535)]
    rows: Option<u16>,
    /// Columns (default 80).
    #[param(maximum = 65_535)]
    cols: Option<u16>,
    /// Bytes of output the client already received from this terminal (a client that
    /// reconnects): only later output is replayed from the scrollback.
    offset: Option<u64>,
}

/// Opens the session's terminal over a WebSocket.
#[utoipa::path(get, path = "/v1/sessions/{session_id}/shell", tag = "sessions",
    params(("session_id" = SessionId, Path, description = "The session's id"), ShellParams),
    responses((status = 101, description = "Switching to the WebSocket shell protocol"),
        (status = "4XX", body = onmemos_core::api::ErrorBody)))]
pub(crate) async fn shell(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<SessionId>,
    ApiQuery(q): ApiQuery<ShellParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let size = PtySize {
        rows: q.rows.unwrap_or(24),
        cols: q.cols.unwrap_or(80),
    };
    // Everything that can be refused is refused before the upgrade, as a JSON error: first
    // whose session it is (checked once, by `attachable` or `attach`), then whether this is a
    // WebSocket request at all.
    let ws = ws.map_err(|e| {
        ApiError(Error::invalid(
            "upgrade",
            format!("this endpoint speaks WebSocket: {e}"),
        ))
    });
    let terminal = s.engine.terminals().attach(&p, id, size, q.offset).await?;
    let ws = ws?;
    // One message at most this large: a huge frame closes its own socket (1009), and never
    // reaches the terminal.
    let ws = ws
        .max_frame_size(MAX_SHELL_MESSAGE)
        .max_message_size(MAX_SHELL_MESSAGE);
    Ok(ws.on_upgrade(move |socket| async move {
        serve(socket, &s.engine, &p, terminal).await;
    }))
}

fn text(frame: &ShellServerFrame) -> Message {
    Message::Text(
        serde_json::to_string(frame)
            .unwrap_or_else(|_| {
                "{\"type\":\"error\",\"code\":\"internal\",\"message\":\"\"}".into()
            })
            .into(),
    )
}

async fn status_frame(engine: &Engine, caller: &Principal, id: SessionId) -> ShellServerFrame {
    match engine.sessions().get(caller, id).await {
        Ok(session) => ShellServerFrame::Status {
            session: Box::new(session),
        },
        Err(e) => error_frame(&e),
    }
}

fn error_frame(e: &Error) -> ShellServerFrame {
    ShellServerFrame::Error {
        code: e.code().as_str().to_owned(),
        message: e.message().to_owned(),
    }
}

/// Runs one socket until either side ends it; the terminal is detached when it returns.
async fn serve(mut socket: WebSocket, engine: &Engine, caller: &Principal, mut terminal: Terminal) {
    let id = terminal.session_id();
    let mut events = engine.sessions().subscribe();
    let lost = terminal.lost();
    if lost > 0 {
        let notice = ShellServerFrame::Notice {
            message: format!(
                "{lost} bytes of output were produced while you were away and no longer fit \
                 in the {} KiB scrollback; what follows is the last of it",
                SCROLLBACK_BYTES / 1024
            ),
            warning: None,
        };
        if socket.send(text(&notice)).await.is_err() {
            return;
        }
    }
    // The replayed scrollback first, then the status, then everything as it comes.
    if let Some(replay) = terminal.take_replay()
        && socket.send(Message::Binary(replay)).await.is_err()
    {
        return;
    }
    if socket
        .send(text(&status_frame(engine, caller, id).await))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Err(e) = terminal.write(&bytes).await {
                        let _ = socket.send(text(&error_frame(&e))).await;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let reply = control(engine, caller, &terminal, t.as_str()).await;
                    if let Some(reply) = reply && socket.send(text(&reply)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            },
            bytes = terminal.read() => match bytes {
                Some(bytes) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                None => {
                    exit(&mut socket, engine, id).await;
                    return;
                }
            },
            event = events.recv() => match event {
                Ok(event) if event.session_id == id => match event.kind {
                    SessionEventKind::Warning { warning, .. } => {
                        let notice = ShellServerFrame::Notice { message: event.message, warning: Some(warning) };
                        if socket.send(text(&notice)).await.is_err() {
                            return;
                        }
                    }
                    SessionEventKind::Stopped { .. } | SessionEventKind::Failed { .. } => {
                        let notice = ShellServerFrame::Notice { message: event.message, warning: None };
                        let _ = socket.send(text(&notice)).await;
                        exit(&mut socket, engine, id).await;
                        return;
                    }
                    _ => {}
                },
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Answers one control frame; `None` when it needs no answer.
async fn control(
    engine: &Engine,
    caller: &Principal,
    terminal: &Terminal,
    frame: &str,
) -> Option<ShellServerFrame> {
    let id = terminal.session_id();
    let frame: ShellClientFrame = match serde_json::from_str(frame) {
        Ok(f) => f,
        Err(e) => {
            return Some(ShellServerFrame::Error {
                code: "invalid_request".into(),
                message: format!(
                    "not a control frame ({e}); expected {{\"type\": \"resize\", \"rows\": …, \"cols\": …}}, {{\"type\": \"status\"}} or {{\"type\": \"credits\"}}"
                ),
            });
        }
    };
    engine.sessions().touch(id).await;
    match frame {
        ShellClientFrame::Resize { rows, cols } => {
            match terminal.resize(PtySize { rows, cols }).await {
                Ok(()) => None,
                Err(e) => Some(error_frame(&e)),
            }
        }
        ShellClientFrame::Status => Some(status_frame(engine, caller, id).await),
        ShellClientFrame::Credits => Some(match engine.credits().balance(caller).await {
            Ok(balance) => ShellServerFrame::Credits {
                balance: Box::new(balance),
            },
            Err(e) => error_frame(&e),
        }),
    }
}

/// Sends the `exit` frame — the stop reason when the session stopped, else `shell_exited` with
/// the shell's code — and closes the socket.
async fn exit(socket: &mut WebSocket, engine: &Engine, id: SessionId) {
    let TerminalEnd { code, reason } = engine.terminals().ending(id).await;
    let _ = socket
        .send(text(&ShellServerFrame::Exit { code, reason }))
        .await;
    let _ = socket.send(Message::Close(None)).await;
}
