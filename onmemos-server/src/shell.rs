//! The shell WebSocket: `GET /v1/sessions/{id}/shell` (SPEC §6).
//!
//! Each session's terminal is held by a [`Hub`]: one attachment to the compute's PTY, whose
//! output the hub keeps in a scrollback ring (64 KiB) and fans out to every socket attached.
//! When the last socket leaves, the hub stays for the grace period; a socket that comes back
//! within it re-attaches to the same terminal and first receives the scrollback, or, when it
//! says how much output it already has (`offset`), only the output it missed.
//!
//! Frames: binary both ways carry terminal bytes; text frames carry JSON control messages
//! ([`ShellClientFrame`] in, [`ShellServerFrame`] out). A malformed control frame gets an
//! `error` frame and changes nothing. Limit warnings arrive as `notice`; when the session
//! stops, a `notice` and an `exit` with the stop reason, then the server closes the socket.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use onmemos_core::api::{ShellClientFrame, ShellServerFrame};
use onmemos_core::id::SessionId;
use onmemos_core::model::{SessionEventKind, SessionStatus};
use onmemos_core::ports::compute::{ComputeStatus, PtyConnection, PtySize};
use onmemos_core::{Engine, Error, Principal};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Auth};
use crate::state::AppState;

/// How much recent output a re-attaching socket is sent.
const SCROLLBACK_BYTES: usize = 64 * 1024;
/// The largest WebSocket frame or message a shell socket takes (keystrokes and pastes are far
/// smaller; a larger one closes the socket with 1009).
pub const MAX_SHELL_MESSAGE: usize = 64 * 1024;
/// How long one socket's input may wait for the terminal to take it.
const INPUT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// One session's terminal, shared by the sockets attached to it.
struct Hub {
    pty: Arc<dyn PtyConnection>,
    /// Recent output and the fan-out, under one lock so a joining socket sees each byte
    /// exactly once: in the scrollback or on its receiver.
    state: Mutex<HubOutput>,
    /// Sockets attached now.
    clients: AtomicUsize,
    /// Becomes `true` when the terminal closes.
    closed: watch::Receiver<bool>,
    reader: tokio::task::AbortHandle,
}

struct HubOutput {
    scrollback: VecDeque<u8>,
    /// Bytes of output since the terminal opened (the scrollback is the last of them).
    written: u64,
    fanout: broadcast::Sender<Bytes>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Hub {
    fn start(pty: Box<dyn PtyConnection>) -> Arc<Self> {
        let pty: Arc<dyn PtyConnection> = Arc::from(pty);
        let (closed_tx, closed) = watch::channel(false);
        let (fanout, _) = broadcast::channel(1024);
        Arc::new_cyclic(|weak: &std::sync::Weak<Hub>| {
            let weak = weak.clone();
            let reading = pty.clone();
            let reader = tokio::spawn(async move {
                while let Ok(Some(bytes)) = reading.read().await {
                    let Some(hub) = weak.upgrade() else { return };
                    let mut out = hub.state.lock().unwrap_or_else(|e| e.into_inner());
                    out.scrollback.extend(bytes.iter());
                    out.written += bytes.len() as u64;
                    let excess = out.scrollback.len().saturating_sub(SCROLLBACK_BYTES);
                    out.scrollback.drain(..excess);
                    // No socket attached is fine: the scrollback keeps it.
                    let _ = out.fanout.send(bytes);
                }
                let _ = closed_tx.send(true);
            })
            .abort_handle();
            Hub {
                pty,
                state: Mutex::new(HubOutput {
                    scrollback: VecDeque::new(),
                    written: 0,
                    fanout,
                }),
                clients: AtomicUsize::new(0),
                closed,
                reader,
            }
        })
    }

    /// What a socket joining after the first `offset` bytes of output is sent: the scrollback
    /// after them (all of it without an offset), how many bytes after the offset already left
    /// the scrollback, and a receiver of everything after it.
    fn join(&self, offset: Option<u64>) -> Joined {
        let out = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let kept_from = out.written - out.scrollback.len() as u64;
        let skip = offset.map_or(0, |offset| offset.clamp(kept_from, out.written) - kept_from);
        let lost = offset.map_or(0, |offset| kept_from.saturating_sub(offset));
        Joined {
            replay: out
                .scrollback
                .iter()
                .skip(usize::try_from(skip).unwrap_or(usize::MAX))
                .copied()
                .collect(),
            lost,
            output: out.fanout.subscribe(),
        }
    }
}

/// What a joining socket is sent first, and its receiver of later output.
struct Joined {
    replay: Vec<u8>,
    /// Output bytes a reconnecting socket missed that are no longer in the scrollback.
    lost: u64,
    output: broadcast::Receiver<Bytes>,
}

/// The terminals of this server's sessions.
#[derive(Default)]
pub(crate) struct ShellHubs {
    hubs: Mutex<HashMap<SessionId, Arc<Hub>>>,
}

impl std::fmt::Debug for ShellHubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.hubs.lock().map(|h| h.len()).unwrap_or_default();
        f.debug_struct("ShellHubs").field("open", &n).finish()
    }
}

impl ShellHubs {
    /// The open hub of a session, if there is one.
    fn open(&self, id: SessionId) -> Option<Arc<Hub>> {
        self.hubs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .filter(|h| !*h.closed.borrow())
            .cloned()
    }

    /// A new hub over a session's terminal.
    fn start(&self, id: SessionId, pty: Box<dyn PtyConnection>) -> Arc<Hub> {
        let hub = Hub::start(pty);
        self.hubs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, hub.clone());
        hub
    }

    /// Called when a socket leaves: after `grace`, a hub nobody re-attached to is closed.
    fn leave(self: &Arc<Self>, id: SessionId, hub: &Arc<Hub>, grace: Duration) {
        if hub.clients.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let hubs = self.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if hub.clients.load(Ordering::SeqCst) == 0 {
                let mut map = hubs.hubs.lock().unwrap_or_else(|e| e.into_inner());
                if map.get(&id).is_some_and(|h| Arc::ptr_eq(h, &hub)) {
                    map.remove(&id);
                }
            }
        });
    }
}

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
    let sessions = s.engine.sessions();
    let (ws, hub) = match s.shells.open(id) {
        Some(hub) => {
            sessions.attachable(&p, id, size).await?;
            let ws = ws?;
            hub.pty.resize(size).await?;
            (ws, hub)
        }
        None => {
            let (_, pty) = sessions.attach(&p, id, size).await?;
            (ws?, s.shells.start(id, pty))
        }
    };
    let grace = Duration::from_secs(s.config.shell_grace_secs);
    // One message at most this large: a huge frame closes its own socket (1009), and never
    // reaches the terminal.
    let ws = ws
        .max_frame_size(MAX_SHELL_MESSAGE)
        .max_message_size(MAX_SHELL_MESSAGE);
    Ok(ws.on_upgrade(move |socket| async move {
        // Counted from the upgrade on: a request that never upgrades holds nothing.
        hub.clients.fetch_add(1, Ordering::SeqCst);
        serve(socket, &s.engine, &p, id, &hub, q.offset).await;
        s.shells.leave(id, &hub, grace);
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

/// Runs one socket until either side ends it.
async fn serve(
    mut socket: WebSocket,
    engine: &Engine,
    caller: &Principal,
    id: SessionId,
    hub: &Hub,
    offset: Option<u64>,
) {
    let mut events = engine.sessions().subscribe();
    let Joined {
        replay,
        lost,
        mut output,
    } = hub.join(offset);
    let mut closed = hub.closed.clone();
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
    if !replay.is_empty() && socket.send(Message::Binary(replay.into())).await.is_err() {
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
                    engine.sessions().touch(id).await;
                    // A terminal that does not read its input cannot hold the other sockets'
                    // keystrokes (and resizes) behind this one for longer than this.
                    match tokio::time::timeout(INPUT_WRITE_TIMEOUT, hub.pty.write(&bytes)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            let _ = socket.send(text(&error_frame(&e))).await;
                        }
                        Err(_) => {
                            let e = onmemos_core::Error::unavailable(format!(
                                "the terminal did not take this input within {} s; it was dropped",
                                INPUT_WRITE_TIMEOUT.as_secs()
                            ));
                            let _ = socket.send(text(&error_frame(&e))).await;
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let reply = control(engine, caller, id, hub, t.as_str()).await;
                    if let Some(reply) = reply && socket.send(text(&reply)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            },
            bytes = output.recv() => match bytes {
                Ok(bytes) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                // Fell behind: that output is lost to this socket (it stays in the scrollback).
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
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
            () = wait_closed(&mut closed) => {
                // Send what is still queued, then the end.
                while let Ok(bytes) = output.try_recv() {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                exit(&mut socket, engine, id).await;
                return;
            }
        }
    }
}

/// Answers one control frame; `None` when it needs no answer.
async fn control(
    engine: &Engine,
    caller: &Principal,
    id: SessionId,
    hub: &Hub,
    frame: &str,
) -> Option<ShellServerFrame> {
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
            if !(1..=1000).contains(&rows) || !(1..=1000).contains(&cols) {
                return Some(ShellServerFrame::Error {
                    code: "invalid_request".into(),
                    message: "rows and cols must be between 1 and 1000".into(),
                });
            }
            match hub.pty.resize(PtySize { rows, cols }).await {
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
    let stored = engine.database().sessions().record(id).await.ok().flatten();
    let reason = stored
        .as_ref()
        .filter(|r| {
            matches!(
                r.session.status,
                SessionStatus::Stopped | SessionStatus::Failed
            )
        })
        .and_then(|r| r.session.stop_reason)
        .map_or("shell_exited", |r| r.as_str());
    let code = match engine.compute() {
        Some(compute) => match compute.status(id).await {
            Ok(ComputeStatus::Exited(code)) => code,
            _ => None,
        },
        None => None,
    };
    let _ = socket
        .send(text(&ShellServerFrame::Exit {
            code,
            reason: reason.to_owned(),
        }))
        .await;
    let _ = socket.send(Message::Close(None)).await;
}

/// Returns once the terminal has closed (or its hub is gone).
async fn wait_closed(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await.map(|_| ());
}
