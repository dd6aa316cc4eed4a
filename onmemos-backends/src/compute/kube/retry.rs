//! Bounded retries of calls to the API server, and what its errors mean to OnMemOS.
//!
//! A call is retried when the failure may pass — 429, 500, 502, 503, 504, a connection lost or
//! a call that stalled — at most [`ATTEMPTS`] times with exponential waits and jitter, within
//! [`BUDGET`]. Every call retried here is idempotent or made so by its caller (a create that
//! finds its object already made counts as done).

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use onmemos_core::{Error, ErrorKind};

/// Tries per call, the first included.
pub(super) const ATTEMPTS: usize = 4;
/// The most time spent waiting between tries, over one call.
pub(super) const BUDGET: Duration = Duration::from_secs(10);

/// Whether a failure may pass if the call is made again.
pub(super) fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs `call` until it succeeds, fails for good, or the tries are spent.
pub(super) async fn retried<T, F, Fut>(call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(ATTEMPTS - 1)
        .with_total_delay(Some(BUDGET))
        .with_jitter();
    call.retry(backoff)
        .when(transient)
        .notify(|e, wait| tracing::debug!(error = %e, ?wait, "retrying a Kubernetes call"))
        .await
}

/// An API server error as OnMemOS's, naming what was being done.
pub(super) fn kube_error(doing: &str, e: kube::Error) -> Error {
    let kind = match &e {
        kube::Error::Api(s) => match s.code {
            400 | 422 => ErrorKind::InvalidInput,
            403 if s.message.contains("exceeded quota") => ErrorKind::QuotaExceeded,
            401 | 403 => ErrorKind::Configuration,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Unavailable,
        },
        e if transient(e) => ErrorKind::Unavailable,
        _ => ErrorKind::Unavailable,
    };
    let detail = match &e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    };
    Error::new(kind, format!("Kubernetes: could not {doing}: {detail}"))
}
