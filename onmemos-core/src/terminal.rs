//! The terminals of this process's sessions, in memory: one hub per session holding a single
//! attachment to the compute's PTY, a scrollback of its recent output and the fan-out to every
//! attachment ([`crate::services::TerminalService`] is how callers reach them).
//!
//! When the last attachment leaves, the hub stays for the grace period; an attachment that
//! comes back within it joins the same terminal and first receives the scrollback, or, when
//! it says how much output it already has (an offset), only the output it missed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::id::SessionId;
use crate::ports::compute::PtyConnection;

/// How much recent output a re-attaching caller is sent.
pub(crate) const SCROLLBACK_BYTES: usize = 64 * 1024;

/// One session's terminal, shared by everything attached to it.
pub(crate) struct Hub {
    pub(crate) pty: Arc<dyn PtyConnection>,
    /// Recent output and the fan-out, under one lock so a joining attachment sees each byte
    /// exactly once: in the scrollback or on its receiver.
    state: Mutex<HubOutput>,
    /// Attachments now.
    clients: AtomicUsize,
    /// Becomes `true` when the terminal closes.
    pub(crate) closed: watch::Receiver<bool>,
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

/// What an attachment joining after the first `offset` bytes of output is sent first, and its
/// receiver of later output.
pub(crate) struct Joined {
    /// The scrollback after the offset (all of it without one).
    pub(crate) replay: Vec<u8>,
    /// Where the replay starts in the terminal's output.
    pub(crate) replay_from: u64,
    /// Output bytes after the offset that are no longer in the scrollback.
    pub(crate) lost: u64,
    pub(crate) output: broadcast::Receiver<Bytes>,
}

impl Hub {
    fn start(pty: Box<dyn PtyConnection>) -> Arc<Self> {
        let pty: Arc<dyn PtyConnection> = Arc::from(pty);
        let (closed_tx, closed) = watch::channel(false);
        let (fanout, _) = broadcast::channel(1024);
        Arc::new_cyclic(|weak: &Weak<Hub>| {
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
                    // Nothing attached is fine: the scrollback keeps it.
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

    /// Joins the terminal after the first `offset` bytes of its output, counting one more
    /// attachment (released by [`Hubs::leave`]).
    pub(crate) fn join(&self, offset: Option<u64>) -> Joined {
        let out = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.clients.fetch_add(1, Ordering::SeqCst);
        let kept_from = out.written - out.scrollback.len() as u64;
        let from = offset.map_or(kept_from, |offset| offset.clamp(kept_from, out.written));
        let lost = offset.map_or(0, |offset| kept_from.saturating_sub(offset));
        Joined {
            replay: out
                .scrollback
                .iter()
                .skip(usize::try_from(from - kept_from).unwrap_or(usize::MAX))
                .copied()
                .collect(),
            replay_from: from,
            lost,
            output: out.fanout.subscribe(),
        }
    }
}

/// The terminals of this process's sessions.
#[derive(Default)]
pub(crate) struct Hubs {
    hubs: Mutex<HashMap<SessionId, Arc<Hub>>>,
}

impl std::fmt::Debug for Hubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.hubs.lock().map(|h| h.len()).unwrap_or_default();
        f.debug_struct("Hubs").field("open", &n).finish()
    }
}

impl Hubs {
    /// The open hub of a session, if there is one.
    pub(crate) fn open(&self, id: SessionId) -> Option<Arc<Hub>> {
        self.hubs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .filter(|h| !*h.closed.borrow())
            .cloned()
    }

    /// A new hub over a session's terminal.
    pub(crate) fn start(&self, id: SessionId, pty: Box<dyn PtyConnection>) -> Arc<Hub> {
        let hub = Hub::start(pty);
        self.hubs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, hub.clone());
        hub
    }

    /// Called when an attachment leaves: after `grace`, a hub nobody re-attached to is
    /// closed.
    pub(crate) fn leave(self: &Arc<Self>, id: SessionId, hub: &Arc<Hub>, grace: Duration) {
        if hub.clients.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left to wait on: the process is ending, and the hub with it.
            self.forget(id, hub);
            return;
        };
        let hubs = self.clone();
        let hub = hub.clone();
        runtime.spawn(async move {
            tokio::time::sleep(grace).await;
            if hub.clients.load(Ordering::SeqCst) == 0 {
                hubs.forget(id, &hub);
            }
        });
    }

    fn forget(&self, id: SessionId, hub: &Arc<Hub>) {
        let mut map = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&id).is_some_and(|h| Arc::ptr_eq(h, hub)) {
            map.remove(&id);
        }
    }
}
