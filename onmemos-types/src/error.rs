//! The one error type of OnMemOS.
//!
//! Every layer speaks [`Error`]: backends convert their private errors into it at their
//! boundary (choosing an [`ErrorKind`]), services raise it, the server maps it to an HTTP status
//! and a wire [`ErrorCode`] exactly once (see [`crate::api::ErrorCode`]), and the client maps the
//! wire code back.
//!
//! ```
//! use onmemos_types::{Error, ErrorKind};
//!
//! let err = Error::not_found("workspace not found").with_context("workspace", "ws_123");
//! assert_eq!(err.kind(), ErrorKind::NotFound);
//! assert!(!err.is_retryable());
//! assert_eq!(err.to_string(), "not found: workspace not found (workspace: ws_123)");
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::api::ErrorCode;

/// `Result` with the OnMemOS [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely: the category a caller branches on.
///
/// The finer wire code (which also names e.g. *why* a key was rejected) is [`ErrorCode`]; every
/// code belongs to exactly one kind.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input was malformed or failed validation; the context names the field.
    InvalidInput,
    /// No credentials, or credentials that are not valid (unknown, revoked, expired).
    Unauthenticated,
    /// Valid credentials without the right to do this.
    PermissionDenied,
    /// The resource does not exist (or is not visible to the caller).
    NotFound,
    /// The request conflicts with the current state (duplicate name, concurrent update…).
    Conflict,
    /// The account lacks the credits the operation needs.
    InsufficientCredits,
    /// A configured limit (duration, cost, count…) forbids the operation.
    LimitExceeded,
    /// A storage or resource quota would be exceeded.
    QuotaExceeded,
    /// Too many requests; retry later.
    RateLimited,
    /// The operation did not finish in time.
    Timeout,
    /// A dependency (database, object store, cluster) is unavailable right now.
    Unavailable,
    /// The configuration is invalid (unknown URL scheme, disabled feature, bad setting).
    Configuration,
    /// The backend does not support this operation (see its `capabilities()`).
    Unsupported,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorKind {
    /// Whether an error of this kind is worth retrying by default.
    pub fn is_retryable_by_default(self) -> bool {
        matches!(self, Self::RateLimited | Self::Timeout | Self::Unavailable)
    }

    /// A short human name, used in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid input",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission denied",
            Self::NotFound => "not found",
            Self::Conflict => "conflict",
            Self::InsufficientCredits => "insufficient credits",
            Self::LimitExceeded => "limit exceeded",
            Self::QuotaExceeded => "quota exceeded",
            Self::RateLimited => "rate limited",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Configuration => "configuration",
            Self::Unsupported => "unsupported",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OnMemOS error: a kind, an optional precise wire code, a message, a retryable flag,
/// context pairs and an optional source.
pub struct Error {
    kind: ErrorKind,
    code: Option<ErrorCode>,
    message: Cow<'static, str>,
    retryable: bool,
    context: Vec<(&'static str, String)>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind`; retryable when the kind is retryable by default.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            code: None,
            message: message.into(),
            retryable: kind.is_retryable_by_default(),
            context: Vec::new(),
            source: None,
        }
    }

    /// A new error with a precise wire code; its kind is the code's kind.
    pub fn with_code(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        let mut err = Self::new(code.kind(), message);
        err.code = Some(code);
        err
    }

    /// Invalid input in `field` (a dotted path such as `env.PATH` or `resources.cpu_millis`).
    pub fn invalid(field: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::with_code(ErrorCode::InvalidRequest, message).with_context("field", field)
    }

    /// The resource does not exist or is not visible to the caller.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::with_code(ErrorCode::NotFound, message)
    }

    /// A conflicting state, e.g. a duplicate name.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::with_code(ErrorCode::Conflict, message)
    }

    /// Valid credentials without the right to do this.
    pub fn permission_denied(message: impl Into<Cow<'static, str>>) -> Self {
        Self::with_code(ErrorCode::PermissionDenied, message)
    }

    /// An invalid configuration setting.
    pub fn configuration(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Configuration, message)
    }

    /// An unexpected failure (a bug, or a backend misbehaving).
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A dependency is unavailable right now (retryable).
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// The category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The precise wire code: the one set when the error was raised, or the default of its kind.
    pub fn code(&self) -> ErrorCode {
        self.code
            .unwrap_or_else(|| ErrorCode::default_for(self.kind))
    }

    /// The message, without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The context pairs, in the order they were added.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The value of the first context pair named `key`.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The field an [`ErrorKind::InvalidInput`] error is about, if it names one.
    pub fn field(&self) -> Option<&str> {
        self.context_value("field")
    }

    /// Adds a context pair (fluent).
    #[must_use]
    pub fn with_context(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.context.push((key, value.into()));
        self
    }

    /// Names another field as the one the error is about (a service speaking its request's
    /// names rather than a lower layer's), keeping the code and the rest of the context.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.context.retain(|(k, _)| *k != "field");
        self.context.push(("field", field.into()));
        self
    }

    /// Sets the source error (fluent).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Overrides the retryable flag (fluent).
    #[must_use]
    pub fn set_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: {v}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("code", &self.code())
            .field("message", &self.message)
            .field("retryable", &self.retryable);
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_follows_kind_unless_overridden() {
        assert!(Error::unavailable("db down").is_retryable());
        assert!(!Error::not_found("x").is_retryable());
        assert!(Error::internal("x").set_retryable(true).is_retryable());
    }

    #[test]
    fn code_defaults_to_kind_and_explicit_code_sets_kind() {
        let err = Error::new(ErrorKind::NotFound, "gone");
        assert_eq!(err.code(), ErrorCode::NotFound);
        let err = Error::with_code(ErrorCode::ApiKeyRevoked, "revoked");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert_eq!(err.code(), ErrorCode::ApiKeyRevoked);
    }

    #[test]
    fn invalid_names_the_field() {
        let err = Error::invalid("name", "must be a DNS label");
        assert_eq!(err.field(), Some("name"));
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn source_is_exposed() {
        let io = std::io::Error::other("disk on fire");
        let err = Error::unavailable("write failed").with_source(io);
        let source = std::error::Error::source(&err).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("disk on fire"));
    }
}
