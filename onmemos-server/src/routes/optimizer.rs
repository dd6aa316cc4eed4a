use crate::response::Json;
use axum::extract::State;
use onmemos_core::api::{ErrorBody, OptimizationReport};
use onmemos_core::ports::optimizer::OptimizationRequest;

use crate::error::ApiError;
use crate::extract::{ApiJson, Authorized, needs};
use crate::state::AppState;

/// Recommendations for a cluster snapshot under a policy: consolidation (nodes to drain, nodes
/// to buy), spot placement per workload, rightsizing from usage, and office-hours actions, each
/// with its expected monthly saving and risk. Pure computation: nothing is applied.
#[utoipa::path(post, path = "/v1/optimizer/recommendations", tag = "optimizer",
    request_body = OptimizationRequest,
    responses((status = 200, body = OptimizationReport), (status = "4XX", body = ErrorBody),
        (status = 501, description = "No optimizer is configured on this server", body = ErrorBody)))]
pub(crate) async fn recommendations(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::OptimizerRun>,
    ApiJson(body): ApiJson<OptimizationRequest>,
) -> Result<Json<OptimizationReport>, ApiError> {
    Ok(Json(s.engine.optimizer().recommend(&p, body).await?))
}
