//! JSON response bodies.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use onmemos_core::Error;
use serde::Serialize;

use crate::error::ApiError;

/// A JSON response body. Serialized into one buffer sized for a typical answer: axum's own
/// starts at 128 bytes and grows (a session is about 700), and each growth is a reallocation
/// that the allocator may have to lock for.
#[derive(Debug, Clone)]
pub(crate) struct Json<T>(pub T);

/// What a body's first buffer holds before it grows.
const FIRST_BUFFER: usize = 1024;

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(FIRST_BUFFER);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => {
                ApiError(Error::internal("the response could not be serialized").with_source(e))
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_json_with_its_type() {
        let response = Json(serde_json::json!({"a": [1, 2]})).into_response();
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/json"))
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&body[..], br#"{"a":[1,2]}"#);
    }

    /// A map with a non-string key cannot be JSON: an API error, not a panic.
    #[tokio::test]
    async fn a_value_json_cannot_hold_is_a_server_error() {
        let map = std::collections::BTreeMap::from([((1, 2), "x")]);
        let response = Json(map).into_response();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
