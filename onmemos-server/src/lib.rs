//! # onmemos-server
//!
//! The HTTP face of an [`Engine`]: a REST API and WebSocket shells with API-key
//! authentication, an OpenAPI 3.1 document at `/openapi.json`, Prometheus metrics at `/metrics`
//! and JSON errors from one code table.
//!
//! The router is a library function, so a service can mount OnMemOS next to its own routes and
//! middleware:
//!
//! ```no_run
//! # async fn demo(engine: onmemos_core::Engine) -> std::io::Result<()> {
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my service" }))
//!     .merge(onmemos_server::router(engine));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

mod config;
mod error;
mod extract;
mod idempotency;
mod metrics;
mod openapi;
mod rate_limit;
mod response;
mod routes;
mod serve;
mod shell;
mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use onmemos_core::api::ErrorCode;
use onmemos_core::{Engine, Error};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use config::ServerConfig;
pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery, Auth};
pub use idempotency::{IDEMPOTENCY_KEY, REPLAYED};
pub use metrics::Metrics;
pub use serve::serve;
pub use shell::MAX_SHELL_MESSAGE;
pub use state::{AppState, SharedState};

/// The header carrying the request id (set when the client sends none, echoed in the response
/// and in every error body).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The OnMemOS API over `engine`, with default [`ServerConfig`].
pub fn router(engine: Engine) -> Router {
    router_with(engine, ServerConfig::default())
}

/// The OnMemOS API over `engine`, with the given bounds on requests.
pub fn router_with(engine: Engine, config: ServerConfig) -> Router {
    let state = AppState::new(engine, config.clone());
    let (api, openapi) = routes::api().split_for_parts();
    let openapi = Arc::new(openapi::finish(openapi));
    let router = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/metrics", axum::routing::get(metrics::serve))
        .fallback(route_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request<_>| {
                            let id = req
                                .headers()
                                .get(REQUEST_ID_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default();
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %req.uri().path(),
                                request_id = %id,
                                user = tracing::field::Empty,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(CatchPanicLayer::new())
                .layer(axum::middleware::from_fn_with_state(
                    Duration::from_secs(config.request_timeout_secs.max(1)),
                    request_timeout,
                ))
                .layer(DefaultBodyLimit::max(config.max_body_bytes)),
        )
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(error::render_errors))
        // Outside the error renderer, so the responses it stores are complete.
        .layer(axum::middleware::from_fn_with_state(
            state,
            idempotency::layer,
        ));
    with_request_ids(router)
}

/// Answers 503 when a handler takes longer than `limit` to produce its response head. Object
/// uploads are exempt: their handler reads the whole body, which has an idle timeout instead;
/// so is a synchronous exec, bounded by its own `timeout_secs` (the command is killed then,
/// and when the request goes away before).
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if routes::storage::is_upload(request.method(), request.uri().path())
        || routes::sessions::is_exec(request.method(), request.uri().path())
    {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// Wraps a router in the outermost layers of the OnMemOS router: request ids and error
/// rendering, so every error has the API's JSON shape. Useful for routes of your own mounted
/// beside it.
pub fn wrap_errors<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    with_request_ids(router.layer(axum::middleware::from_fn(error::render_errors)))
}

/// The outermost layers: a request id on every request (the client's, or a new UUID), echoed
/// in the response.
fn with_request_ids<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(request_id)),
    )
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(routes::api().split_for_parts().1)
}

async fn route_not_found() -> ApiError {
    ApiError(Error::with_code(
        ErrorCode::RouteNotFound,
        "no route matches this path",
    ))
}
