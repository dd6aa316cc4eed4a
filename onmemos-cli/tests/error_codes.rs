//! The error table round-trips: every wire code, raised in core, leaves the server with its
//! status and name, and the client reads it back as the same code and the expected kind.

use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use onmemos::client::{Error as ClientError, ErrorKind as ClientKind};
use onmemos::core::api::ErrorCode;
use onmemos::core::{Error, ErrorKind};
use tower::ServiceExt;

fn expected_client_kind(code: ErrorCode) -> ClientKind {
    match code.kind() {
        ErrorKind::InvalidInput => ClientKind::Validation,
        ErrorKind::Unauthenticated => ClientKind::Authentication,
        ErrorKind::PermissionDenied => ClientKind::PermissionDenied,
        ErrorKind::NotFound => ClientKind::NotFound,
        ErrorKind::Conflict => ClientKind::Conflict,
        ErrorKind::InsufficientCredits => ClientKind::InsufficientCredits,
        ErrorKind::LimitExceeded | ErrorKind::QuotaExceeded => ClientKind::LimitExceeded,
        ErrorKind::RateLimited => ClientKind::RateLimited,
        ErrorKind::Timeout => ClientKind::Timeout,
        _ => ClientKind::Server,
    }
}

#[tokio::test]
async fn every_code_round_trips_through_server_and_client() {
    // A router whose one route raises the code named in the path, through the real error
    // rendering middleware of the server.
    for &code in ErrorCode::ALL {
        let app = axum::Router::new().route(
            "/raise",
            axum::routing::get(move || async move {
                onmemos::server::ApiError(
                    Error::with_code(code, format!("raised {code}")).with_context("field", "f"),
                )
                .into_response()
            }),
        );
        let app = onmemos::server::wrap_errors(app);
        let resp = app
            .oneshot(
                Request::builder()
                    .uri("/raise")
                    .body(Body::empty())
                    .unwrap_or_default(),
            )
            .await
            .unwrap_or_else(|e| match e {});
        let status = resp.status().as_u16();
        assert_eq!(status, code.http_status(), "{code}");
        let retry_after = resp.headers().get("retry-after").is_some();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let err = ClientError::from_response(status, &bytes, None);
        assert_eq!(err.code(), Some(code.as_str()), "{code}");
        assert_eq!(err.kind(), expected_client_kind(code), "{code}");
        assert_eq!(
            onmemos::client::kind_of_code(code),
            expected_client_kind(code)
        );
        assert_eq!(err.status(), Some(code.http_status()));
        assert!(err.request_id().is_some(), "{code} lost its request id");
        let internal = matches!(code.kind(), ErrorKind::Internal | ErrorKind::Configuration);
        if internal {
            assert_eq!(
                err.message(),
                "internal server error",
                "{code} leaked its message"
            );
        } else {
            assert_eq!(err.message(), format!("raised {code}"));
            assert_eq!(err.field(), Some("f"));
        }
        let wants_retry_after =
            matches!(code.kind(), ErrorKind::RateLimited | ErrorKind::Unavailable);
        assert_eq!(retry_after, wants_retry_after, "{code}: Retry-After");
    }
}
