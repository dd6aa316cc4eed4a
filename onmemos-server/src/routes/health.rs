use crate::response::Json;
use axum::extract::State;
use axum::http::StatusCode;
use onmemos_core::api::{ComputeHealth, Health};

use crate::state::AppState;

fn health(status: impl Into<String>) -> Json<Health> {
    Json(Health {
        status: status.into(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        compute: None,
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(),
    responses((status = 200, description = "The server is alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    health("ok")
}

/// Readiness: the database answers. The body also says how sessions are isolated: a compute
/// whose sandbox is `unavailable` refuses sessions until it works (the server stays ready
/// for everything else).
#[utoipa::path(get, path = "/readyz", tag = "health", security(),
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "A dependency is down", body = Health),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (status, Json(mut body)) = match state.engine.ready().await {
        Ok(()) => (StatusCode::OK, health("ok")),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                health("database unavailable"),
            )
        }
    };
    body.compute = state.engine.compute().map(|c| {
        let caps = c.capabilities();
        ComputeHealth {
            name: caps.name.to_owned(),
            sandbox: caps.sandbox,
            limits: caps.limits,
        }
    });
    (status, Json(body))
}
