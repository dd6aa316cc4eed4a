//! The table of wire error codes: each code, its HTTP status and its [`ErrorKind`], in one place.
//!
//! The server answers every error as an [`ErrorBody`]; the client reads the code back with
//! [`ErrorCode::parse`]. A test round-trips every code through both.

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($name:literal, $status:literal, $kind:ident), )+) => {
        /// A machine-readable error code, sent as its snake_case name.
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )+ ];

            /// The snake_case wire name.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )+ }
            }

            /// The HTTP status the server answers with.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )+ }
            }

            /// The kind every error with this code has.
            pub fn kind(self) -> ErrorKind {
                match self { $( ErrorCode::$variant => ErrorKind::$kind, )+ }
            }

            /// The code with this wire name, if it is one.
            pub fn parse(name: &str) -> Option<ErrorCode> {
                match name { $( $name => Some(ErrorCode::$variant), )+ _ => None }
            }
        }
    };
}

error_codes! {
    /// The request body is not valid JSON, or not of the expected shape (the message says where).
    MalformedBody = ("malformed_body", 400, InvalidInput),
    /// A field failed validation; `field` names it.
    InvalidRequest = ("invalid_request", 400, InvalidInput),
    /// A path or query parameter could not be parsed.
    InvalidParameter = ("invalid_parameter", 400, InvalidInput),
    /// The pagination cursor is not one this server issued.
    InvalidCursor = ("invalid_cursor", 400, InvalidInput),
    /// The request body is larger than the server accepts.
    PayloadTooLarge = ("payload_too_large", 413, InvalidInput),
    /// The request body has a content type the endpoint does not accept.
    UnsupportedMediaType = ("unsupported_media_type", 415, InvalidInput),
    /// The requested byte range does not overlap the object.
    RangeNotSatisfiable = ("range_not_satisfiable", 416, InvalidInput),
    /// No API key was sent.
    MissingApiKey = ("missing_api_key", 401, Unauthenticated),
    /// The API key is malformed or unknown.
    InvalidApiKey = ("invalid_api_key", 401, Unauthenticated),
    /// The API key was revoked.
    ApiKeyRevoked = ("api_key_revoked", 401, Unauthenticated),
    /// The API key has expired.
    ApiKeyExpired = ("api_key_expired", 401, Unauthenticated),
    /// The caller may not do this.
    PermissionDenied = ("permission_denied", 403, PermissionDenied),
    /// The API key lacks the scope this endpoint needs; the message names it.
    InsufficientScope = ("insufficient_scope", 403, PermissionDenied),
    /// The resource does not exist or is not visible to the caller.
    NotFound = ("not_found", 404, NotFound),
    /// No route matches the path.
    RouteNotFound = ("route_not_found", 404, NotFound),
    /// The route exists but not for this method.
    MethodNotAllowed = ("method_not_allowed", 405, InvalidInput),
    /// The request conflicts with the current state (e.g. the name is taken).
    Conflict = ("conflict", 409, Conflict),
    /// A condition of the request (`If-Match`, the object's version) no longer holds.
    PreconditionFailed = ("precondition_failed", 412, Conflict),
    /// A request with the same idempotency key is still being processed.
    IdempotencyInFlight = ("idempotency_in_flight", 409, Conflict),
    /// The idempotency key was already used with a different request.
    IdempotencyKeyReused = ("idempotency_key_reused", 422, InvalidInput),
    /// The account has not enough available credits.
    InsufficientCredits = ("insufficient_credits", 402, InsufficientCredits),
    /// A configured limit forbids the operation.
    LimitExceeded = ("limit_exceeded", 422, LimitExceeded),
    /// A quota (e.g. workspace storage) would be exceeded.
    QuotaExceeded = ("quota_exceeded", 413, QuotaExceeded),
    /// Too many requests; see `Retry-After`.
    RateLimited = ("rate_limited", 429, RateLimited),
    /// The request took longer than the server allows.
    RequestTimeout = ("request_timeout", 408, Timeout),
    /// The backend operation timed out.
    Timeout = ("timeout", 504, Timeout),
    /// A dependency is unavailable; see `Retry-After`.
    Unavailable = ("unavailable", 503, Unavailable),
    /// The backend does not support this operation.
    Unsupported = ("unsupported", 501, Unsupported),
    /// The server is misconfigured.
    Configuration = ("configuration", 500, Configuration),
    /// An unexpected server error.
    Internal = ("internal", 500, Internal),
}

impl ErrorCode {
    /// The code an error of `kind` gets when it was raised without a precise code.
    pub fn default_for(kind: ErrorKind) -> ErrorCode {
        match kind {
            ErrorKind::InvalidInput => ErrorCode::InvalidRequest,
            ErrorKind::Unauthenticated => ErrorCode::InvalidApiKey,
            ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::Conflict => ErrorCode::Conflict,
            ErrorKind::InsufficientCredits => ErrorCode::InsufficientCredits,
            ErrorKind::LimitExceeded => ErrorCode::LimitExceeded,
            ErrorKind::QuotaExceeded => ErrorCode::QuotaExceeded,
            ErrorKind::RateLimited => ErrorCode::RateLimited,
            ErrorKind::Timeout => ErrorCode::Timeout,
            ErrorKind::Unavailable => ErrorCode::Unavailable,
            ErrorKind::Configuration => ErrorCode::Configuration,
            ErrorKind::Unsupported => ErrorCode::Unsupported,
            ErrorKind::Internal => ErrorCode::Internal,
        }
    }

    /// The code for a bare HTTP error status produced outside a handler (by a layer or the
    /// router), when no more precise code is known.
    pub fn for_status(status: u16) -> ErrorCode {
        match status {
            400 => ErrorCode::InvalidRequest,
            401 => ErrorCode::MissingApiKey,
            403 => ErrorCode::PermissionDenied,
            404 => ErrorCode::RouteNotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            416 => ErrorCode::RangeNotSatisfiable,
            412 => ErrorCode::PreconditionFailed,
            429 => ErrorCode::RateLimited,
            501 => ErrorCode::Unsupported,
            503 => ErrorCode::Unavailable,
            504 => ErrorCode::Timeout,
            s if (400..500).contains(&s) => ErrorCode::InvalidRequest,
            _ => ErrorCode::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The machine-readable code (see [`ErrorCode`]); clients must accept codes they do not know.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// The id of the request, also sent as the `x-request-id` header.
    pub request_id: String,
    /// For validation errors, the field that was wrong (a dotted path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_from_its_name_and_serde_agrees() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let status = code.http_status();
            assert!((400..600).contains(&status), "{code} has status {status}");
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    #[test]
    fn default_code_of_every_kind_has_that_kind() {
        for &code in ErrorCode::ALL {
            let kind = code.kind();
            assert_eq!(ErrorCode::default_for(kind).kind(), kind);
        }
    }

    #[test]
    fn status_fallbacks_are_error_statuses() {
        assert_eq!(ErrorCode::for_status(413), ErrorCode::PayloadTooLarge);
        assert_eq!(ErrorCode::for_status(418), ErrorCode::InvalidRequest);
        assert_eq!(ErrorCode::for_status(502), ErrorCode::Internal);
    }
}
