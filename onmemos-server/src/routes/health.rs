use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use onmemos_core::api::Health;

use crate::state::AppState;

fn health(status: impl Into<String>) -> Json<Health> {
    Json(Health {
        status: status.into(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(),
    responses((status = 200, description = "The server is alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    health("ok")
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", security(),
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "A dependency is down", body = Health),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.engine.ready().await {
        Ok(()) => (StatusCode::OK, health("ok")),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                health("database unavailable"),
            )
        }
    }
}
