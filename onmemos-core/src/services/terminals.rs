//! Terminals: attach to a running session's shell, detach, and re-attach within the grace
//! period to the same terminal — in-process, with no HTTP (the server's WebSocket shell is a
//! thin adapter over this).
//!
//! ```no_run
//! # async fn demo(engine: onmemos_core::Engine, ada: onmemos_core::Principal,
//! #     id: onmemos_core::id::SessionId) -> onmemos_core::Result<()> {
//! use onmemos_core::ports::compute::PtySize;
//!
//! let size = PtySize { rows: 24, cols: 80 };
//! let mut terminal = engine.terminals().attach(&ada, id, size, None).await?;
//! terminal.write(b"echo hello\n").await?;
//! let output = terminal.read().await; // the prompt, the echo, `hello`…
//! let offset = terminal.offset();
//! drop(terminal); // detached: the terminal waits for the grace period
//! let again = engine.terminals().attach(&ada, id, size, Some(offset)).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::model::SessionStatus;
use crate::ports::compute::{ComputeStatus, PtySize};
use crate::principal::Principal;
use crate::terminal::{Hub, Joined};

/// How much recent output a terminal keeps for attachments that join later.
pub const SCROLLBACK_BYTES: usize = crate::terminal::SCROLLBACK_BYTES;

/// How long one attachment's input may wait for the terminal to take it.
const INPUT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The terminals of the caller's sessions, reached through
/// [`Engine::terminals`](crate::Engine::terminals).
#[derive(Debug)]
pub struct TerminalService<'e> {
    engine: &'e Engine,
}

impl<'e> TerminalService<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    /// Attaches to the terminal of session `id` (the caller's, running, on this server's
    /// compute) at `size`: joins the terminal already open here, resizing it, or opens one.
    ///
    /// `offset` is how many bytes of the terminal's output the caller already has (from
    /// [`Terminal::offset`] of an earlier attachment): the first reads then replay only what
    /// came after it from the scrollback, and [`Terminal::lost`] counts what no longer fits
    /// there. Without it, the whole scrollback is replayed.
    pub async fn attach(
        &self,
        caller: &Principal,
        id: SessionId,
        size: PtySize,
        offset: Option<u64>,
    ) -> Result<Terminal> {
        let sessions = self.engine.sessions();
        let hubs = &self.engine.shared().terminals;
        let hub = match hubs.open(id) {
            Some(hub) => {
                sessions.attachable(caller, id, size).await?;
                hub.pty.resize(size).await?;
                hub
            }
            None => {
                let (_, pty) = sessions.attach(caller, id, size).await?;
                hubs.start(id, pty)
            }
        };
        let Joined {
            replay,
            replay_from,
            lost,
            output,
        } = hub.join(offset);
        Ok(Terminal {
            engine: self.engine.clone(),
            id,
            closed: hub.closed.clone(),
            hub,
            replay: (!replay.is_empty()).then(|| Bytes::from(replay)),
            offset: replay_from,
            lost,
            output,
        })
    }

    /// How the terminal of session `id` ended, for a caller whose [`Terminal::read`] returned
    /// `None`: the session's stop reason when it stopped, else `shell_exited`, with the shell's
    /// exit code when the compute knows it.
    pub async fn ending(&self, id: SessionId) -> TerminalEnd {
        let stored = self
            .engine
            .database()
            .sessions()
            .record(id)
            .await
            .ok()
            .flatten();
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
        let code = match self.engine.compute() {
            Some(compute) => match compute.status(id).await {
                Ok(ComputeStatus::Exited(code)) => code,
                _ => None,
            },
            None => None,
        };
        TerminalEnd {
            code,
            reason: reason.to_owned(),
        }
    }
}

/// How a terminal ended (see [`TerminalService::ending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalEnd {
    /// The shell's exit code, when it exited by itself with one.
    pub code: Option<i32>,
    /// The session's stop reason (`duration_limit`, `user`…), or `shell_exited`.
    pub reason: String,
}

/// One attachment to a session's terminal. Dropping it detaches: the terminal stays open for
/// the grace period (`sessions.terminal_grace_secs`), so a new attachment within it finds the
/// same shell.
pub struct Terminal {
    engine: Engine,
    id: SessionId,
    hub: Arc<Hub>,
    closed: watch::Receiver<bool>,
    /// Scrollback still to hand out before live output.
    replay: Option<Bytes>,
    /// Bytes of the terminal's output handed out, counted from its start.
    offset: u64,
    lost: u64,
    output: broadcast::Receiver<Bytes>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("session", &self.id)
            .field("offset", &self.offset)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// The session whose terminal this is.
    pub fn session_id(&self) -> SessionId {
        self.id
    }

    /// Bytes of output after the offset given to [`TerminalService::attach`] that had already
    /// left the scrollback (64 KiB) when this attachment joined: they are gone for it.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// How many bytes of the terminal's output this attachment has been given, counted from
    /// the terminal's start: the offset to re-attach with.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The replayed scrollback, if it was not read yet: what [`Self::read`] returns first.
    pub fn take_replay(&mut self) -> Option<Bytes> {
        let replay = self.replay.take()?;
        self.offset += replay.len() as u64;
        Some(replay)
    }

    /// The next output: first the replayed scrollback, then the terminal's output as it
    /// comes. `None` once the terminal has closed and everything before it was read. Output
    /// an attachment is too slow to take is skipped (it stays in the scrollback). Safe to use
    /// in `tokio::select!`.
    pub async fn read(&mut self) -> Option<Bytes> {
        if let Some(replay) = self.take_replay() {
            return Some(replay);
        }
        loop {
            let bytes = tokio::select! {
                biased;
                received = self.output.recv() => match received {
                    Ok(bytes) => bytes,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = wait_closed(&mut self.closed) => match self.output.try_recv() {
                    // What was queued before the end still goes out.
                    Ok(bytes) => bytes,
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                },
            };
            self.offset += bytes.len() as u64;
            return Some(bytes);
        }
    }

    /// Types `bytes` into the terminal (counted as activity on the session). A terminal that
    /// does not take them within 5 s answers `Unavailable` and the bytes are dropped, so one
    /// stuck attachment cannot hold the others' input behind it.
    pub async fn write(&self, bytes: &[u8]) -> Result<()> {
        self.engine.sessions().touch(self.id).await;
        match tokio::time::timeout(INPUT_WRITE_TIMEOUT, self.hub.pty.write(bytes)).await {
            Ok(written) => written,
            Err(_) => Err(Error::unavailable(format!(
                "the terminal did not take this input within {} s; it was dropped",
                INPUT_WRITE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Resizes the terminal (rows and columns between 1 and 1000).
    pub async fn resize(&self, size: PtySize) -> Result<()> {
        if !(1..=1000).contains(&size.rows) || !(1..=1000).contains(&size.cols) {
            return Err(Error::invalid(
                "size",
                "rows and cols must be between 1 and 1000",
            ));
        }
        self.engine.sessions().touch(self.id).await;
        self.hub.pty.resize(size).await
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let grace = Duration::from_secs(self.engine.config().sessions.terminal_grace_secs);
        self.engine
            .shared()
            .terminals
            .leave(self.id, &self.hub, grace);
    }
}

/// Returns once the terminal has closed (or its hub is gone).
async fn wait_closed(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await.map(|_| ());
}
