//! The client's error: a kind to branch on, and everything the server said.

use std::fmt;

use onmemos_types::api::{ErrorBody, ErrorCode};

/// What went wrong, from the caller's point of view.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No key, or a key that is unknown, revoked or expired (401).
    Authentication,
    /// The key lacks a scope or the user a right (403).
    PermissionDenied,
    /// The resource does not exist or is not yours (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// The request was malformed or failed validation (400, 413, 415, 422); see [`Error::field`].
    Validation,
    /// Not enough credits (402).
    InsufficientCredits,
    /// A limit or quota forbids the operation.
    LimitExceeded,
    /// Too many requests (429); see [`Error::retry_after`].
    RateLimited,
    /// The server failed (5xx).
    Server,
    /// The request or the server timed out.
    Timeout,
    /// The server could not be reached.
    Network,
    /// The answer could not be decoded.
    Decode,
    /// The client was configured wrongly (bad URL, missing key).
    Configuration,
    /// A local file could not be read or written (uploads from and downloads to files).
    Io,
}

/// The kind a wire error code belongs to, for the client.
pub fn kind_of_code(code: ErrorCode) -> ErrorKind {
    use onmemos_types::ErrorKind as Core;
    match code.kind() {
        Core::InvalidInput => ErrorKind::Validation,
        Core::Unauthenticated => ErrorKind::Authentication,
        Core::PermissionDenied => ErrorKind::PermissionDenied,
        Core::NotFound => ErrorKind::NotFound,
        Core::Conflict => ErrorKind::Conflict,
        Core::InsufficientCredits => ErrorKind::InsufficientCredits,
        Core::LimitExceeded | Core::QuotaExceeded => ErrorKind::LimitExceeded,
        Core::RateLimited => ErrorKind::RateLimited,
        Core::Timeout => ErrorKind::Timeout,
        _ => ErrorKind::Server,
    }
}

fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Authentication,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        402 => ErrorKind::InsufficientCredits,
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        400..=499 => ErrorKind::Validation,
        _ => ErrorKind::Server,
    }
}

/// An error from the OnMemOS client (boxed, so `Result`s stay one pointer wide).
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    status: Option<u16>,
    code: Option<String>,
    message: String,
    request_id: Option<String>,
    field: Option<String>,
    retry_after: Option<std::time::Duration>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            status: None,
            code: None,
            message: message.into(),
            request_id: None,
            field: None,
            retry_after: None,
            source: None,
        }))
    }

    /// This error, naming `field` as the one that was wrong.
    #[cfg(feature = "python")]
    pub(crate) fn with_field(mut self, field: &str) -> Self {
        self.0.field = Some(field.to_owned());
        self
    }

    /// The error of an HTTP error answer: its status, and its JSON body when it has one.
    pub fn from_response(
        status: u16,
        body: &[u8],
        retry_after: Option<std::time::Duration>,
    ) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => {
                let kind = ErrorCode::parse(&b.code)
                    .map(kind_of_code)
                    .unwrap_or_else(|| kind_of_status(status));
                Self(Box::new(Inner {
                    kind,
                    status: Some(status),
                    code: Some(b.code),
                    message: b.message,
                    request_id: Some(b.request_id).filter(|id| !id.is_empty()),
                    field: b.field,
                    retry_after,
                    source: None,
                }))
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
                let mut err = Self::new(
                    kind_of_status(status),
                    format!("HTTP {status}: {}", text.trim()),
                );
                err.0.status = Some(status);
                err.0.retry_after = retry_after;
                err
            }
        }
    }

    pub(crate) fn transport(err: reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_decode() {
            ErrorKind::Decode
        } else if err.is_builder() {
            ErrorKind::Configuration
        } else {
            ErrorKind::Network
        };
        let mut out = Self::new(kind, err.to_string());
        out.0.status = err.status().map(|s| s.as_u16());
        out.0.source = Some(Box::new(err));
        out
    }

    pub(crate) fn decode(err: serde_json::Error, status: u16) -> Self {
        let mut out = Self::new(
            ErrorKind::Decode,
            format!("could not decode the server's answer: {err}"),
        );
        out.0.status = Some(status);
        out.0.source = Some(Box::new(err));
        out
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        self.0.status
    }

    /// The server's wire code (`api_key_revoked`), when it sent one.
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The server's request id, to quote when reporting a problem.
    pub fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }

    /// For validation errors, the field that was wrong.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// How long the server asked to wait before retrying.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.0.retry_after
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)?;
        if let Some(code) = &self.0.code {
            write!(f, " [{code}]")?;
        }
        if let Some(id) = &self.0.request_id {
            write!(f, " (request {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// `Result` with the client [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_fall_back_to_the_status() {
        let body = br#"{"code":"brand_new_code","message":"m","request_id":"r"}"#;
        let err = Error::from_response(404, body, None);
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.code(), Some("brand_new_code"));
    }

    #[test]
    fn non_json_bodies_keep_the_status_and_text() {
        let err = Error::from_response(502, b"<html>bad gateway</html>", None);
        assert_eq!(err.kind(), ErrorKind::Server);
        assert!(err.message().contains("bad gateway"));
    }
}
