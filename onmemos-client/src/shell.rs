//! The client side of the shell WebSocket (`/v1/sessions/{id}/shell`).
//!
//! A [`Shell`] survives a lost connection: when the socket breaks before the terminal ended,
//! it reconnects (with backoff, for up to [`ShellOptions::reconnect_within`]), telling the
//! server how much output it already has, so only the output it missed is replayed. The server
//! keeps a terminal whose last socket left for its grace period (`terminal_grace_secs`, 60 s by
//! default), and 64 KiB of its output.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use onmemos_types::api::{ShellClientFrame, ShellServerFrame};
use onmemos_types::id::SessionId;
use reqwest::Method;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetryPolicy;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What arrives from a session's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// Terminal output.
    Output(Bytes),
    /// A control message: status, credits, a notice, the exit, or an error.
    Control(ShellServerFrame),
    /// The connection was lost and a new one is attached to the same terminal; the output
    /// produced meanwhile follows (what is still in the server's scrollback).
    Reconnected {
        /// Connections attempted before this one succeeded.
        attempts: u32,
    },
}

/// How a shell connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellOptions {
    /// Terminal rows.
    pub rows: u16,
    /// Terminal columns.
    pub cols: u16,
    /// How long to keep trying to reconnect a lost connection (zero: never reconnect). Match
    /// it to the server's grace period: after that, the terminal is gone.
    pub reconnect_within: Duration,
}

impl Default for ShellOptions {
    fn default() -> Self {
        Self {
            rows: 24,
            cols: 80,
            reconnect_within: Duration::from_secs(60),
        }
    }
}

/// Where a shell connects, kept to reconnect.
#[derive(Debug, Clone)]
struct Target {
    ws_base: String,
    api_key: Option<String>,
    session: SessionId,
}

/// An open terminal of a running session.
#[derive(Debug)]
pub struct Shell {
    socket: Socket,
    target: Target,
    options: ShellOptions,
    /// Output bytes received so far: where a reconnection resumes.
    received: u64,
    /// The server said the terminal ended: a closed socket is then the end, not a loss.
    ended: bool,
}

/// The longest wait between two reconnection attempts.
const MAX_WAIT: Duration = Duration::from_secs(2);

impl Shell {
    pub(crate) async fn connect(
        base: &str,
        api_key: Option<&str>,
        session: SessionId,
        options: ShellOptions,
    ) -> Result<Self> {
        let ws_base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            return Err(Error::new(
                ErrorKind::Configuration,
                format!("the server URL {base:?} is neither http:// nor https://"),
            ));
        };
        if !(1..=1000).contains(&options.rows) || !(1..=1000).contains(&options.cols) {
            return Err(Error::new(
                ErrorKind::Validation,
                format!(
                    "a terminal of {}×{} (rows and cols must be between 1 and 1000)",
                    options.rows, options.cols
                ),
            ));
        }
        let target = Target {
            ws_base,
            api_key: api_key.map(str::to_owned),
            session,
        };
        let socket = open(&target, &options, None).await?;
        Ok(Self {
            socket,
            target,
            options,
            received: 0,
            ended: false,
        })
    }

    /// The session this terminal belongs to.
    pub fn session(&self) -> SessionId {
        self.target.session
    }

    /// Sends keyboard input. Input sent while the connection is being lost may be lost with
    /// it; the next [`Self::next`] reconnects.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.socket
            .send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .await
            .map_err(|e| Error::new(ErrorKind::Network, format!("shell: {e}")))
    }

    /// Sends a control message (`resize`, `status`, `credits`). A resize is remembered and
    /// applied again on reconnection.
    pub async fn control(&mut self, frame: &ShellClientFrame) -> Result<()> {
        if let ShellClientFrame::Resize { rows, cols } = *frame {
            self.options.rows = rows;
            self.options.cols = cols;
        }
        let text = serde_json::to_string(frame)
            .map_err(|e| Error::new(ErrorKind::Validation, format!("control frame: {e}")))?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| Error::new(ErrorKind::Network, format!("shell: {e}")))
    }

    /// Resizes the terminal.
    pub async fn resize(&mut self, rows: u16, cols: u16) -> Result<()> {
        self.control(&ShellClientFrame::Resize { rows, cols }).await
    }

    /// The next output or control message; `None` once the terminal ended and the server
    /// closed the socket. A connection lost before that is reconnected (see the module
    /// documentation), reported as [`ShellEvent::Reconnected`]; an error means it could not be.
    pub async fn next(&mut self) -> Option<Result<ShellEvent>> {
        loop {
            let lost = match self.socket.next().await {
                Some(Ok(Message::Binary(b))) => {
                    self.received += b.len() as u64;
                    return Some(Ok(ShellEvent::Output(b)));
                }
                Some(Ok(Message::Text(t))) => {
                    let frame = serde_json::from_str::<ShellServerFrame>(t.as_str());
                    if let Ok(ShellServerFrame::Exit { .. }) = &frame {
                        self.ended = true;
                    }
                    return Some(
                        frame
                            .map(ShellEvent::Control)
                            .map_err(|e| Error::decode(e, 101)),
                    );
                }
                Some(Ok(Message::Close(_))) | None if self.ended => return None,
                Some(Ok(Message::Close(_))) | None => Error::new(
                    ErrorKind::Network,
                    "shell: the server closed the connection",
                ),
                Some(Ok(_)) => continue,
                Some(Err(e)) => Error::new(ErrorKind::Network, format!("shell: {e}")),
            };
            if self.ended {
                return None;
            }
            return Some(self.reconnect(lost).await);
        }
    }

    /// Attaches a new connection to the terminal, retrying failures that may pass (the
    /// client's [`RetryPolicy`] decides which, and paces the retries) until `reconnect_within`
    /// has passed; a final answer of the API (the session ended, the key was revoked) ends the
    /// attempts at once.
    async fn reconnect(&mut self, lost: Error) -> Result<ShellEvent> {
        let window = self.options.reconnect_within;
        let deadline = Instant::now() + window;
        let mut schedule = RetryPolicy::default()
            .with_max_attempts(u32::MAX)
            .with_max_delay(MAX_WAIT)
            .with_total_budget(window)
            .schedule();
        let mut attempts = 0;
        let mut last = lost;
        while Instant::now() < deadline {
            attempts += 1;
            // No attempt outlives the window, however the network fails.
            let left = deadline.saturating_duration_since(Instant::now());
            let opened =
                tokio::time::timeout(left, open(&self.target, &self.options, Some(self.received)))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::new(
                            ErrorKind::Timeout,
                            "shell: connecting timed out",
                        ))
                    });
            match opened {
                Ok(socket) => {
                    tracing::debug!(session = %self.target.session, attempts, "shell reconnected");
                    self.socket = socket;
                    return Ok(ShellEvent::Reconnected { attempts });
                }
                // A server restarting answers 502/503 for a moment: worth waiting for.
                Err(e) if crate::retry::transient(&e) => last = e,
                Err(e) => return Err(e),
            }
            // The upgrade is a GET. The last wait runs to the end of the window.
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = schedule
                .next_wait(&Method::GET, &last)
                .map_or(left, |wait| wait.min(left));
            tokio::time::sleep(wait).await;
        }
        Err(Error::new(
            ErrorKind::Network,
            format!(
                "the shell connection was lost and not re-established within {window:?} \
                 ({attempts} attempts): {last}"
            ),
        ))
    }

    /// Closes the socket (the session keeps running).
    pub async fn close(mut self) -> Result<()> {
        self.socket
            .close(None)
            .await
            .map_err(|e| Error::new(ErrorKind::Network, format!("shell: {e}")))
    }
}

/// Opens one socket to the terminal, resuming after `offset` output bytes when given.
async fn open(target: &Target, options: &ShellOptions, offset: Option<u64>) -> Result<Socket> {
    let mut url = format!(
        "{}/v1/sessions/{}/shell?rows={}&cols={}",
        target.ws_base, target.session, options.rows, options.cols
    );
    if let Some(offset) = offset {
        url.push_str(&format!("&offset={offset}"));
    }
    let mut request = url
        .into_client_request()
        .map_err(|e| Error::new(ErrorKind::Configuration, format!("shell URL: {e}")))?;
    if let Some(key) = &target.api_key {
        let value = format!("Bearer {key}").parse().map_err(|_| {
            Error::new(
                ErrorKind::Configuration,
                "the API key is not a valid header",
            )
        })?;
        request.headers_mut().insert("authorization", value);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        // Refused before the upgrade: the body is the API's JSON error.
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().clone().unwrap_or_default();
            Err(Error::from_response(status, &body, None))
        }
        Err(e) => Err(Error::new(ErrorKind::Network, format!("shell: {e}"))),
    }
}
