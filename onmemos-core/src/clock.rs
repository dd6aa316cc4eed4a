//! An injectable clock, so that expiry, throttling and billing run on simulated time in
//! tests.
//!
//! OnMemOS timestamps have millisecond precision: that is what every database stores and what
//! billing is computed in, so a value read back always equals the value written.

use std::fmt::Debug;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

pub use onmemos_types::time::to_millis;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current instant, with millisecond precision (see [`to_millis`]).
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_millis(Utc::now())
    }
}

/// A clock that only moves when told to; for tests and simulations.
///
/// ```
/// use chrono::Duration;
/// use onmemos_core::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::at_unix_millis(1_700_000_000_000);
/// let t0 = clock.now();
/// clock.advance(Duration::seconds(90));
/// assert_eq!(clock.now() - t0, Duration::seconds(90));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(to_millis(now)),
        }
    }

    /// A clock stopped at the given Unix time in milliseconds (the epoch if out of range).
    pub fn at_unix_millis(ms: i64) -> Self {
        Self::new(DateTime::from_timestamp_millis(ms).unwrap_or_default())
    }

    /// Moves the clock forward (or backward, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = to_millis(*now + by);
    }

    /// The clock's time plus `by` (handy for expiry times in tests).
    pub fn now_plus(&self, by: Duration) -> DateTime<Utc> {
        to_millis(self.now() + by)
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to_millis(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
