//! The engine's in-process state, shared by its services and its monitor: what one server
//! process holds in memory besides the ports (events for local subscribers, activity
//! throttling, upload reservations, part memory, open terminals, the monitor's wake-up).
//!
//! It depends on nothing of the engine, so the engine can own it and every service reach it
//! through [`Engine::shared`](crate::Engine::shared) without a cycle between their modules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::id::{SessionId, UserId, WorkspaceId};
use crate::model::SessionEvent;

/// The in-process state of one engine.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Session events made in this process, for shells and streams.
    pub(crate) bus: tokio::sync::broadcast::Sender<SessionEvent>,
    /// Activity on sessions, recorded here and written in batches.
    pub(crate) activity: Pending<SessionId>,
    /// Wakes the monitor's loop early (a session started whose first deadline may come
    /// before the next pass).
    pub(crate) monitor_wake: Arc<tokio::sync::Notify>,
    /// Bytes being uploaded per workspace, counted against the quota.
    pub(crate) uploads: InFlight,
    /// Parts of resumable uploads this server may hold in memory at once, shared by tenants.
    pub(crate) part_slots: PartSlots,
    /// The terminals of sessions attached here.
    pub(crate) terminals: Arc<crate::terminal::Hubs>,
    /// API keys that authenticated, and their uses not written yet.
    pub(crate) auth: crate::auth_cache::AuthCache,
}

impl Shared {
    /// The state of a new engine holding at most `parts_in_memory` upload parts at once.
    pub(crate) fn new(parts_in_memory: usize) -> Self {
        Self {
            bus: tokio::sync::broadcast::channel(1024).0,
            activity: Pending::default(),
            monitor_wake: Arc::default(),
            uploads: InFlight::default(),
            part_slots: PartSlots::new(parts_in_memory),
            terminals: Arc::default(),
            auth: crate::auth_cache::AuthCache::default(),
        }
    }
}

/// Memory for parts of resumable uploads: `total` slots server-wide, at most half of them
/// (at least one) held by any one tenant, so a tenant trickling bytes into its parts can
/// never keep every other tenant's parts waiting.
#[derive(Debug)]
pub(crate) struct PartSlots {
    global: tokio::sync::Semaphore,
    per_tenant: usize,
    held: Mutex<HashMap<UserId, usize>>,
    freed: tokio::sync::Notify,
}

/// A slot of [`PartSlots`], released when dropped.
pub(crate) struct PartSlot<'a> {
    slots: &'a PartSlots,
    tenant: UserId,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl PartSlots {
    pub(crate) fn new(total: usize) -> Self {
        Self {
            global: tokio::sync::Semaphore::new(total),
            per_tenant: (total / 2).max(1),
            held: Mutex::default(),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Waits for the tenant's share, then for a server-wide slot.
    pub(crate) async fn acquire(&self, tenant: UserId) -> Result<PartSlot<'_>> {
        loop {
            let freed = self.freed.notified();
            {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                let mine = held.entry(tenant).or_default();
                if *mine < self.per_tenant {
                    *mine += 1;
                    break;
                }
            }
            freed.await;
        }
        match self.global.acquire().await {
            Ok(permit) => Ok(PartSlot {
                slots: self,
                tenant,
                _permit: permit,
            }),
            Err(_) => {
                self.release(tenant);
                Err(Error::unavailable("the server is shutting down"))
            }
        }
    }

    fn release(&self, tenant: UserId) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mine) = held.get_mut(&tenant) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                held.remove(&tenant);
            }
        }
        drop(held);
        self.freed.notify_waiters();
    }
}

impl Drop for PartSlot<'_> {
    fn drop(&mut self) {
        self.slots.release(self.tenant);
    }
}

/// Bytes being uploaded per workspace on this server, counted against the quota before they
/// are stored.
#[derive(Debug, Default)]
pub(crate) struct InFlight(Mutex<HashMap<WorkspaceId, Arc<AtomicU64>>>);

impl InFlight {
    pub(crate) fn counter(&self, workspace: WorkspaceId) -> Arc<AtomicU64> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, c| Arc::strong_count(c) > 1 || c.load(Ordering::Relaxed) > 0);
        map.entry(workspace).or_default().clone()
    }
}

/// Times recorded per key here (the use of an API key, activity on a session) and written to
/// the database in batches, off the path that recorded them: at most one batch at a time, and
/// (unless forced) at most one a second.
#[derive(Debug)]
pub(crate) struct Pending<K> {
    state: Mutex<PendingState<K>>,
    writing: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct PendingState<K> {
    /// The latest time recorded for each key, written or not (what this replica knows).
    latest: HashMap<K, DateTime<Utc>>,
    /// Times not written yet.
    unwritten: HashMap<K, DateTime<Utc>>,
    last_write: std::time::Instant,
}

/// Most keys whose latest time is remembered (the memory is emptied past it).
const MAX_REMEMBERED: usize = 100_000;

impl<K> Default for Pending<K> {
    fn default() -> Self {
        Self {
            state: Mutex::new(PendingState {
                latest: HashMap::new(),
                unwritten: HashMap::new(),
                last_write: std::time::Instant::now(),
            }),
            writing: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> Pending<K> {
    fn state(&self) -> std::sync::MutexGuard<'_, PendingState<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `at` for `key` (a later time than one recorded before wins).
    pub(crate) fn record(&self, key: K, at: DateTime<Utc>) {
        let mut state = self.state();
        if state.latest.len() >= MAX_REMEMBERED {
            state.latest.clear();
        }
        let PendingState {
            latest, unwritten, ..
        } = &mut *state;
        for times in [latest, unwritten] {
            let slot = times.entry(key).or_insert(at);
            if *slot < at {
                *slot = at;
            }
        }
    }

    /// The latest time recorded here for `key`, written yet or not.
    pub(crate) fn latest(&self, key: K) -> Option<DateTime<Utc>> {
        self.state().latest.get(&key).copied()
    }

    /// Forgets `key` (its session ended).
    pub(crate) fn forget(&self, key: K) {
        let mut state = self.state();
        state.latest.remove(&key);
        state.unwritten.remove(&key);
    }

    /// The times to write now, if a batch is due (a second after the last, or at once with
    /// `force`) and none is being written. Call [`Self::write_done`] after writing them.
    pub(crate) fn take_due(&self, force: bool) -> Option<Vec<(K, DateTime<Utc>)>> {
        let mut state = self.state();
        if state.unwritten.is_empty()
            || (!force && state.last_write.elapsed() < std::time::Duration::from_secs(1))
            || self.writing.swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return None;
        }
        state.last_write = std::time::Instant::now();
        Some(state.unwritten.drain().collect())
    }

    /// Whether a batch is being written.
    pub(crate) fn writing(&self) -> bool {
        self.writing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Ends a write taken with [`Self::take_due`].
    pub(crate) fn write_done(&self) {
        self.writing
            .store(false, std::sync::atomic::Ordering::Release);
    }
}
