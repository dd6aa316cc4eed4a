//! When and how the client retries a request.
//!
//! A request is retried only when retrying cannot apply it twice: idempotent methods (`GET`,
//! `HEAD`, `PUT`, `DELETE`, `OPTIONS`) and `POST`s, which always carry an `Idempotency-Key` the
//! server deduplicates on (the same key on every attempt). `PATCH` is never retried. It is
//! retried on failures that may pass: the server not reached or the connection lost, a timeout,
//! the answers 408, 429, 500, 502, 503 and 504, and a 409 `idempotency_in_flight` (the same POST
//! is still being answered). The wait is exponential with jitter, at
//! least the server's `Retry-After`, and all waits fit in a total budget: a `Retry-After` beyond
//! what is left ends the retries at once.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::Method;

use crate::error::{Error, ErrorKind};

/// How the client retries: attempts, backoff and a total time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    budget: Duration,
    jitter: bool,
}

impl Default for RetryPolicy {
    /// Four attempts, waits from 100 ms doubling up to 5 s with jitter, 30 s in all.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            budget: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retry: every request is tried once.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// At most `attempts` tries in all (the first included); at least 1.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The first wait, doubled after each retry.
    pub fn with_initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest wait between two tries (a `Retry-After` may ask for more, within the budget).
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The most time spent waiting between tries, over one call.
    pub fn with_total_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Waits exactly the exponential delays, without jitter (for reproducible timing).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// Tries in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The total waiting budget.
    pub fn total_budget(&self) -> Duration {
        self.budget
    }

    /// A fresh schedule of waits for one call.
    pub(crate) fn schedule(&self) -> Schedule {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter {
            builder = builder.with_jitter();
        }
        Schedule {
            delays: Box::new(builder.build()),
            left: self.budget,
        }
    }
}

/// The waits left for one call.
pub(crate) struct Schedule {
    delays: Box<dyn Iterator<Item = Duration> + Send>,
    left: Duration,
}

impl Schedule {
    /// How long to wait before retrying after `error`, or `None` to give up.
    pub(crate) fn next_wait(&mut self, method: &Method, error: &Error) -> Option<Duration> {
        if !may_retry(method) || !transient(error) {
            return None;
        }
        let backoff = self.delays.next()?;
        let wait = error.retry_after().map_or(backoff, |ra| ra.max(backoff));
        if wait > self.left {
            return None;
        }
        self.left -= wait;
        Some(wait)
    }
}

/// Whether a request of `method` can be sent twice without being applied twice.
pub fn may_retry(method: &Method) -> bool {
    // POST carries an idempotency key on every attempt.
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::POST,
    ]
    .contains(method)
}

/// Whether `error` may pass if the request is sent again. Besides the statuses above, a 409
/// `idempotency_in_flight` passes: the first attempt of the same POST is still running, and a
/// later retry gets its answer.
pub fn transient(error: &Error) -> bool {
    if error.code() == Some("idempotency_in_flight") {
        return true;
    }
    match error.status() {
        Some(status) => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
        None => matches!(error.kind(), ErrorKind::Network | ErrorKind::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(status: u16, retry_after: Option<Duration>) -> Error {
        Error::from_response(status, b"", retry_after)
    }

    #[test]
    fn waits_double_within_the_budget_and_stop_at_the_attempts() {
        let policy = RetryPolicy::default()
            .without_jitter()
            .with_initial_delay(Duration::from_millis(100))
            .with_max_attempts(4);
        let mut s = policy.schedule();
        let e = server_error(503, None);
        let waits: Vec<_> = std::iter::from_fn(|| s.next_wait(&Method::GET, &e)).collect();
        assert_eq!(waits.len(), 3, "three retries after the first try");
        for (got, want) in waits.iter().zip([100, 200, 400]) {
            // The factor is an f32 inside backon: exact to a microsecond.
            assert_eq!(got.as_micros() / 1000, want, "{waits:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_and_the_budget_caps_it() {
        let policy = RetryPolicy::default()
            .without_jitter()
            .with_total_budget(Duration::from_secs(3));
        let mut s = policy.schedule();
        let e = server_error(429, Some(Duration::from_secs(2)));
        assert_eq!(s.next_wait(&Method::GET, &e), Some(Duration::from_secs(2)));
        // 1 s of budget left: a second 2 s Retry-After ends the retries.
        assert_eq!(s.next_wait(&Method::GET, &e), None);
    }

    #[test]
    fn only_safe_methods_and_transient_failures_are_retried() {
        let mut s = RetryPolicy::default().schedule();
        assert_eq!(s.next_wait(&Method::PATCH, &server_error(503, None)), None);
        for status in [400, 401, 403, 404, 409, 422, 501] {
            assert!(!transient(&server_error(status, None)), "{status}");
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(transient(&server_error(status, None)), "{status}");
        }
        assert_eq!(
            RetryPolicy::none()
                .schedule()
                .next_wait(&Method::GET, &server_error(503, None)),
            None
        );
    }
}
