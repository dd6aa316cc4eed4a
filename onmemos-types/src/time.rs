//! The precision of OnMemOS timestamps.
//!
//! Timestamps have millisecond precision: that is what every database stores and what billing
//! is computed in, so a value read back always equals the value written.

use chrono::{DateTime, SubsecRound, Utc};

/// `at` truncated to the millisecond precision of OnMemOS timestamps.
pub fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(3)
}
