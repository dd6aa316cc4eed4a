//! Per-key request rates: each API key may make `rate_limit_per_second` requests a second,
//! with bursts of `rate_limit_burst` (a GCRA from `governor`); past it a request answers 429
//! `rate_limited` with `Retry-After` saying when the next one would pass.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use onmemos_core::Error;
use onmemos_core::api::ErrorCode;
use onmemos_core::id::ApiKeyId;

use crate::ServerConfig;

/// Keys remembered before those idle long enough to be back at a full burst are forgotten.
const REMEMBERED_KEYS: usize = 10_000;

/// The rate limiter of one router.
#[derive(Debug)]
pub(crate) struct KeyRates {
    limiter: Option<governor::DefaultKeyedRateLimiter<ApiKeyId>>,
    clock: DefaultClock,
}

impl KeyRates {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        let limiter = NonZeroU32::new(config.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Counts a request of `key`; refused with how long to wait when it is over its rate.
    pub(crate) fn check(&self, key: ApiKeyId) -> Result<(), Error> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > REMEMBERED_KEYS {
            limiter.retain_recent();
        }
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Error::with_code(
                ErrorCode::RateLimited,
                format!("this API key is over its request rate; retry in {secs} s"),
            )
            .with_context("retry_after_secs", secs.max(1).to_string())
        })
    }
}
