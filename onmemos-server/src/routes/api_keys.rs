use crate::response::Json;
use axum::extract::State;
use axum::http::StatusCode;
use onmemos_core::api::{CreateApiKey, CreatedApiKey, ErrorBody, ListParams, Page};
use onmemos_core::id::ApiKeyId;
use onmemos_core::model::ApiKey;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Authorized, needs};
use crate::state::AppState;

/// Creates an API key for the caller; the secret is in this answer only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn create_key(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::KeysWrite>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(s.engine.api_keys().create(&p, body).await?),
    ))
}

/// Lists the caller's API keys.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(ListParams),
    responses((status = 200, body = Page<ApiKey>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn list_keys(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    Ok(Json(s.engine.api_keys().list(&p, &q).await?))
}

/// One of the caller's API keys.
#[utoipa::path(get, path = "/v1/api-keys/{key_id}", tag = "api-keys",
    params(("key_id" = ApiKeyId, Path, description = "The key's id")),
    responses((status = 200, body = ApiKey), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(s.engine.api_keys().get(&p, id).await?))
}

/// Revokes one of the caller's API keys; it stops working at once.
///
/// `DELETE` revokes, it does not erase: the key keeps its record, with `revoked_at` set, and
/// still reads back (`GET`, lists) as an audit trail. Revoking a revoked key answers it again.
#[utoipa::path(delete, path = "/v1/api-keys/{key_id}", tag = "api-keys",
    params(("key_id" = ApiKeyId, Path, description = "The key's id")),
    responses((status = 200, description = "The key, revoked (`revoked_at` set); it still reads back", body = ApiKey), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn revoke_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(s.engine.api_keys().revoke(&p, id).await?))
}
