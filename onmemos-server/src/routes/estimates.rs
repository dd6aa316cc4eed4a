use crate::response::Json;
use axum::extract::State;
use onmemos_core::api::{CompareRequest, Comparison, ErrorBody, Estimate, EstimateRequest};

use crate::error::ApiError;
use crate::extract::{ApiJson, Authorized, needs};
use crate::state::AppState;

/// Quotes a session configuration (a template or explicit resources) for a duration: the exact
/// cost as it would be billed, p50/p90 from the history of such sessions, a confidence, whether
/// the caller's credits cover it, and cheaper alternatives.
#[utoipa::path(post, path = "/v1/estimates", tag = "estimates", request_body = EstimateRequest,
    responses((status = 200, body = Estimate), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn quote(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::CreditsRead>,
    ApiJson(body): ApiJson<EstimateRequest>,
) -> Result<Json<Estimate>, ApiError> {
    Ok(Json(s.engine.estimates().quote(&p, body).await?))
}

/// Quotes several configurations side by side and names the cheapest.
#[utoipa::path(post, path = "/v1/estimates/compare", tag = "estimates",
    request_body = CompareRequest,
    responses((status = 200, body = Comparison), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn compare(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::CreditsRead>,
    ApiJson(body): ApiJson<CompareRequest>,
) -> Result<Json<Comparison>, ApiError> {
    Ok(Json(s.engine.estimates().compare(&p, body).await?))
}
