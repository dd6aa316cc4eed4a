use crate::response::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use onmemos_core::api::{CreditRequest, ErrorBody, Page, TransferListParams};
use onmemos_core::model::{Balance, PriceBook, Transfer};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Auth, Authorized, needs};
use crate::idempotency::idempotency_key;
use crate::state::AppState;

/// The caller's balance: posted, pending, available, and what is left of each grant.
#[utoipa::path(get, path = "/v1/credits", tag = "credits",
    responses((status = 200, body = Balance), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn balance(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<Balance>, ApiError> {
    Ok(Json(s.engine.credits().balance(&p).await?))
}

/// The caller's transfers, oldest first.
#[utoipa::path(get, path = "/v1/credits/transfers", tag = "credits", params(TransferListParams),
    responses((status = 200, body = Page<Transfer>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn transfers(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<TransferListParams>,
) -> Result<Json<Page<Transfer>>, ApiError> {
    Ok(Json(s.engine.credits().transfers(&p, &q).await?))
}

/// Credits a user with purchased credits (admin). Send an `Idempotency-Key`: a retry with it
/// lands on the same transfer.
#[utoipa::path(post, path = "/v1/credits/purchases", tag = "credits", request_body = CreditRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Transfer), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn purchase(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::Admin>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreditRequest>,
) -> Result<(StatusCode, Json<Transfer>), ApiError> {
    let key = idempotency_key(&headers)?;
    Ok((
        StatusCode::CREATED,
        Json(
            s.engine
                .credits()
                .purchase(&p, body, key.as_deref())
                .await?,
        ),
    ))
}

/// Credits a user with promotional credits (admin).
#[utoipa::path(post, path = "/v1/credits/grants", tag = "credits", request_body = CreditRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Transfer), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn grant(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::Admin>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreditRequest>,
) -> Result<(StatusCode, Json<Transfer>), ApiError> {
    let key = idempotency_key(&headers)?;
    Ok((
        StatusCode::CREATED,
        Json(s.engine.credits().grant(&p, body, key.as_deref()).await?),
    ))
}

/// The price book, in micro-credits.
#[utoipa::path(get, path = "/v1/pricing", tag = "credits",
    responses((status = 200, body = PriceBook), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn pricing(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<PriceBook>, ApiError> {
    p.require(onmemos_core::model::Scope::CreditsRead)?;
    Ok(Json(s.engine.credits().pricing()))
}
