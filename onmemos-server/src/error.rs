//! Errors as HTTP responses.
//!
//! A handler returns [`ApiError`] (a core error). Its `IntoResponse` sets the status from the
//! wire code and leaves the details in a response extension; [`render_errors`], the outermost
//! middleware, writes the JSON body with the request id. The same middleware gives a JSON body
//! to bare error statuses made by layers and the router (413, 405, 408…), so every error a
//! client sees has one shape.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use onmemos_core::api::{ErrorBody, ErrorCode};
use onmemos_core::{Error, ErrorKind};

/// A core error on its way to becoming an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

/// The details of an error response, rendered by [`render_errors`].
#[derive(Debug, Clone)]
pub(crate) struct ErrorDetails {
    code: ErrorCode,
    message: String,
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let err = self.0;
        let code = err.code();
        // Internal details stay in the log, not in the response.
        let message = match err.kind() {
            ErrorKind::Internal | ErrorKind::Configuration => {
                tracing::error!(error = ?err, "request failed");
                "internal server error".to_owned()
            }
            ErrorKind::Unavailable | ErrorKind::Timeout => {
                tracing::warn!(error = ?err, "dependency unavailable");
                err.message().to_owned()
            }
            _ => err.message().to_owned(),
        };
        let details = ErrorDetails {
            code,
            message,
            field: err.field().map(str::to_owned),
        };
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        if let Some(secs) = err
            .context_value("retry_after_secs")
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, secs);
        }
        response.extensions_mut().insert(details);
        response
    }
}

/// An error as a complete response, for middleware outside [`render_errors`].
pub(crate) fn render(err: ApiError, request_id: &str) -> Response {
    finish(err.into_response(), request_id)
}

/// The request's id (set by the request-id layer).
pub(crate) fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(crate::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The outermost middleware: writes the JSON body of every error response.
pub(crate) async fn render_errors(request: Request, next: Next) -> Response {
    let request_id = request_id(&request);
    finish(next.run(request).await, &request_id)
}

fn finish(response: Response, request_id: &str) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let details = match response.extensions().get::<ErrorDetails>() {
        Some(details) => details.clone(),
        None if is_json(&response) => return response,
        None => {
            let code = ErrorCode::for_status(status.as_u16());
            ErrorDetails {
                code,
                message: bare_status_message(status, code),
                field: None,
            }
        }
    };
    let body = ErrorBody {
        code: details.code.as_str().to_owned(),
        message: details.message,
        request_id: request_id.to_owned(),
        field: details.field,
    };
    let mut out = (status, axum::Json(body)).into_response();
    let headers = out.headers_mut();
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            headers.insert(name.clone(), value.clone());
        }
    }
    if matches!(
        details.code.kind(),
        ErrorKind::RateLimited | ErrorKind::Unavailable
    ) && !headers.contains_key(header::RETRY_AFTER)
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    out
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

fn bare_status_message(status: StatusCode, code: ErrorCode) -> String {
    match code {
        ErrorCode::PayloadTooLarge => "request body is larger than the server accepts".into(),
        ErrorCode::MethodNotAllowed => "this route does not accept that method".into(),
        ErrorCode::RouteNotFound => "no route matches this path".into(),
        ErrorCode::Unavailable => "the request took longer than the server allows".into(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    }
}
