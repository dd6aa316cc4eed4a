//! Fault injection: the next requests matching a method and a path prefix are answered with
//! an error, or answered late — for testing clients' retries and timeouts.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;

use crate::status::ApiError;

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answers with this status code and the apiserver's reason for it (429 with
    /// `Retry-After: 1`, 500, 503, 504).
    Status(u16),
    /// Waits this long, then answers normally.
    Stall(Duration),
}

/// A fault for the next `times` requests with `method` (any, if `None`) on paths starting
/// with `path_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The method it applies to; `None` for any.
    pub method: Option<Method>,
    /// The start of the paths it applies to (`/api/v1/namespaces/default/pods`).
    pub path_prefix: String,
    /// How many requests it applies to.
    pub times: u32,
    /// What it does.
    pub kind: FaultKind,
}

/// The faults still to happen.
#[derive(Debug, Default)]
pub(crate) struct Faults(Mutex<Vec<Fault>>);

impl Faults {
    pub(crate) fn add(&self, fault: Fault) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(fault);
    }

    /// The fault this request meets, if any (counting it).
    pub(crate) fn take(&self, method: &Method, path: &str) -> Option<FaultKind> {
        let mut faults = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let i = faults.iter().position(|f| {
            f.times > 0
                && f.method.as_ref().is_none_or(|m| m == method)
                && path.starts_with(&f.path_prefix)
        })?;
        faults[i].times -= 1;
        let kind = faults[i].kind.clone();
        if faults[i].times == 0 {
            faults.remove(i);
        }
        Some(kind)
    }
}

/// The error of an injected status.
pub(crate) fn error(code: u16) -> ApiError {
    match code {
        429 => ApiError::too_many_requests("Too many requests: injected fault", 1, Vec::new()),
        503 => ApiError::unavailable(
            "injected fault: the server is currently unable to handle the request",
        ),
        504 => ApiError::timeout("injected fault"),
        _ => ApiError::internal("injected fault"),
    }
}
