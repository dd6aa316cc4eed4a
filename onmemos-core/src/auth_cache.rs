//! Authenticated API keys, kept in memory for a short bounded time, so that a request's
//! authentication costs a digest and a map lookup instead of two database reads.
//!
//! **Revocation still takes effect within one second on every replica.** Revoking a key
//! bumps the database's revocation epoch in the same transaction. An entry is served only
//! while the epoch it was loaded under is the current one *and* the current one was read from
//! the database less than [`MAX_STALENESS`] ago (counted from when that read started). A
//! request that finds the epoch older than [`REFRESH_AFTER`] starts a re-read in the
//! background, so under traffic the epoch stays fresh and no request waits for it; when the
//! re-read is late (a slow database), requests stop using the cache and authenticate against
//! the database, as without it. An epoch that moved empties the cache.
//!
//! Expiry is checked on every hit, against the engine's clock. Entries are dropped after
//! [`ENTRY_TTL`] whatever happens, and the cache never holds more than [`MAX_ENTRIES`] keys.
//! Failures (unknown, revoked, expired keys) are never cached.
//!
//! Uses of a key (`last_used_at`) are kept here too and written in batches, off the request
//! path, at most once per `key_touch_interval_secs` per key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::id::ApiKeyId;
use crate::passport::KeyDigest;
use crate::principal::Principal;
use crate::shared::Pending;

/// How long an epoch read stays good: revocations take effect within this.
pub const MAX_STALENESS: Duration = Duration::from_millis(900);
/// A request that finds the epoch older than this starts a re-read in the background.
pub const REFRESH_AFTER: Duration = Duration::from_millis(250);
/// No entry is served longer than this after it was loaded.
pub const ENTRY_TTL: Duration = Duration::from_secs(60);
/// Most keys held at once (the cache is emptied when it would hold more).
pub const MAX_ENTRIES: usize = 100_000;

/// A key that authenticated.
#[derive(Debug, Clone)]
struct Entry {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
    /// When its use was last recorded (stored, or pending).
    last_used_at: Option<DateTime<Utc>>,
    epoch: u64,
    loaded: Instant,
}

/// The revocation epoch as last read.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    value: u64,
    /// When the read that returned it started; `None` before the first.
    read_at: Option<Instant>,
}

/// What the cache says about a key.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Authenticated, from memory. `touch` is set when its use should be recorded.
    Hit {
        /// The caller.
        principal: Principal,
        /// Whether this use should be recorded (`last_used_at` older than the interval).
        touch: bool,
    },
    /// Not in the cache (or not servable): authenticate against the database.
    Miss,
}

/// The cache of one engine (one replica).
#[derive(Debug)]
pub(crate) struct AuthCache {
    entries: Mutex<HashMap<KeyDigest, Entry>>,
    epoch: Mutex<Epoch>,
    refreshing: AtomicBool,
    uses: Pending<ApiKeyId>,
}

impl Default for AuthCache {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            epoch: Mutex::new(Epoch {
                value: 0,
                read_at: None,
            }),
            refreshing: AtomicBool::new(false),
            uses: Pending::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AuthCache {
    /// Whether the epoch read is recent enough to serve entries loaded under it.
    fn epoch_good(&self) -> Option<u64> {
        let epoch = *lock(&self.epoch);
        epoch
            .read_at
            .filter(|at| at.elapsed() < MAX_STALENESS)
            .map(|_| epoch.value)
    }

    /// Whether the epoch should be re-read now (it is older than [`REFRESH_AFTER`], or was
    /// never read) and no re-read is under way; claims the re-read when it returns `true`.
    pub(crate) fn claim_refresh(&self) -> bool {
        let due = lock(&self.epoch)
            .read_at
            .is_none_or(|at| at.elapsed() >= REFRESH_AFTER);
        due && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Records an epoch read that started at `started`; a moved epoch empties the cache.
    pub(crate) fn epoch_read(&self, value: u64, started: Instant) {
        let mut epoch = lock(&self.epoch);
        if value != epoch.value {
            lock(&self.entries).clear();
        }
        if epoch.read_at.is_none_or(|at| at <= started) || value != epoch.value {
            *epoch = Epoch {
                value,
                read_at: Some(started),
            };
        }
    }

    /// Ends a re-read claimed with [`Self::claim_refresh`] (whatever its outcome).
    pub(crate) fn refresh_done(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// Whether the epoch must be read before a key loaded from the database is cached.
    pub(crate) fn needs_epoch(&self) -> bool {
        self.epoch_good().is_none()
    }

    /// The cached caller of `digest` at `now`, if servable.
    pub(crate) fn lookup(
        &self,
        digest: &KeyDigest,
        now: DateTime<Utc>,
        touch_interval: chrono::Duration,
    ) -> Lookup {
        let Some(epoch) = self.epoch_good() else {
            return Lookup::Miss;
        };
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.get_mut(digest) else {
            return Lookup::Miss;
        };
        if entry.epoch != epoch
            || entry.loaded.elapsed() >= ENTRY_TTL
            || entry.expires_at.is_some_and(|at| at <= now)
        {
            entries.remove(digest);
            return Lookup::Miss;
        }
        let touch = entry
            .last_used_at
            .is_none_or(|at| now - at >= touch_interval);
        if touch {
            entry.last_used_at = Some(now);
        }
        Lookup::Hit {
            principal: entry.principal.clone(),
            touch,
        }
    }

    /// Keeps a key that authenticated against the database, if the epoch read is good.
    pub(crate) fn insert(
        &self,
        digest: KeyDigest,
        principal: Principal,
        expires_at: Option<DateTime<Utc>>,
        last_used_at: Option<DateTime<Utc>>,
    ) {
        let Some(epoch) = self.epoch_good() else {
            return;
        };
        let mut entries = lock(&self.entries);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            digest,
            Entry {
                principal,
                expires_at,
                last_used_at,
                epoch,
                loaded: Instant::now(),
            },
        );
    }

    /// Forgets every key (this replica revoked one: it need not wait for the epoch).
    pub(crate) fn clear(&self) {
        lock(&self.entries).clear();
    }

    /// Records a use of key `id` at `at`, to be written with the next batch.
    pub(crate) fn record_use(&self, id: ApiKeyId, at: DateTime<Utc>) {
        self.uses.record(id, at);
    }

    /// The latest use of key `id` this replica recorded, written yet or not.
    pub(crate) fn last_use(&self, id: ApiKeyId) -> Option<DateTime<Utc>> {
        self.uses.latest(id)
    }

    /// The uses to write now, if a batch is due and none is being written (see
    /// [`Pending::take_due`]). Call [`Self::flush_done`] after writing them.
    pub(crate) fn take_due_uses(&self, force: bool) -> Option<Vec<(ApiKeyId, DateTime<Utc>)>> {
        self.uses.take_due(force)
    }

    /// Ends a write of uses taken with [`Self::take_due_uses`].
    pub(crate) fn flush_done(&self) {
        self.uses.write_done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::UserId;
    use crate::model::Role;
    use crate::passport::Secret;

    fn principal() -> Principal {
        Principal::from_key(UserId::new(), Role::Member, ApiKeyId::new(), Vec::new())
    }

    #[test]
    fn nothing_is_served_before_the_epoch_is_read_or_after_it_moves() {
        let cache = AuthCache::default();
        let digest = KeyDigest::of(&Secret::generate());
        let now = Utc::now();
        let minute = chrono::Duration::minutes(1);
        cache.insert(digest, principal(), None, None);
        assert!(matches!(cache.lookup(&digest, now, minute), Lookup::Miss));
        assert!(cache.needs_epoch());
        cache.epoch_read(7, Instant::now());
        cache.insert(digest, principal(), None, None);
        assert!(matches!(
            cache.lookup(&digest, now, minute),
            Lookup::Hit { touch: true, .. }
        ));
        // The use was recorded: the next hit within the interval does not touch again.
        assert!(matches!(
            cache.lookup(&digest, now, minute),
            Lookup::Hit { touch: false, .. }
        ));
        // A revocation elsewhere moved the epoch: the key must be read again.
        cache.epoch_read(8, Instant::now());
        assert!(matches!(cache.lookup(&digest, now, minute), Lookup::Miss));
    }

    #[test]
    fn an_expired_key_or_a_stale_epoch_is_not_served() {
        let cache = AuthCache::default();
        let digest = KeyDigest::of(&Secret::generate());
        let now = Utc::now();
        let minute = chrono::Duration::minutes(1);
        cache.epoch_read(1, Instant::now());
        cache.insert(digest, principal(), Some(now + minute), None);
        assert!(matches!(
            cache.lookup(&digest, now, minute),
            Lookup::Hit { .. }
        ));
        assert!(matches!(
            cache.lookup(&digest, now + minute, minute),
            Lookup::Miss
        ));
        // An epoch read that started too long ago no longer vouches for anything.
        let long_ago = Instant::now()
            .checked_sub(MAX_STALENESS)
            .unwrap_or_else(Instant::now);
        let other = KeyDigest::of(&Secret::generate());
        cache.epoch_read(1, Instant::now());
        cache.insert(other, principal(), None, None);
        *lock(&cache.epoch) = Epoch {
            value: 1,
            read_at: Some(long_ago),
        };
        assert!(matches!(cache.lookup(&other, now, minute), Lookup::Miss));
        assert!(cache.claim_refresh());
        assert!(!cache.claim_refresh(), "one re-read at a time");
    }

    #[test]
    fn uses_are_batched_per_key_keeping_the_latest() {
        let cache = AuthCache::default();
        let (a, b) = (ApiKeyId::new(), ApiKeyId::new());
        let t = Utc::now();
        cache.record_use(a, t);
        cache.record_use(a, t + chrono::Duration::seconds(5));
        cache.record_use(b, t);
        assert!(cache.take_due_uses(false).is_none(), "not due yet");
        let mut due = cache.take_due_uses(true).unwrap_or_default();
        due.sort();
        let mut want = vec![(a, t + chrono::Duration::seconds(5)), (b, t)];
        want.sort();
        assert_eq!(due, want);
        assert!(
            cache.take_due_uses(true).is_none(),
            "one write at a time (and nothing pending)"
        );
        cache.flush_done();
    }
}
