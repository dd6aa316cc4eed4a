use crate::response::Json;
use axum::extract::State;
use axum::http::StatusCode;
use onmemos_core::api::{CreateUser, CreatedUser, ErrorBody, ListParams, Page};
use onmemos_core::id::UserId;
use onmemos_core::model::User;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Authorized, needs};
use crate::state::AppState;

/// The caller's own user.
#[utoipa::path(get, path = "/v1/me", tag = "users",
    responses((status = 200, body = User), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn me(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<User>, ApiError> {
    Ok(Json(s.engine.users().me(&p).await?))
}

/// Creates a user and their first API key (admin).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = CreatedUser), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn create_user(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::Admin>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(s.engine.users().create(&p, body).await?),
    ))
}

/// Lists users (admin).
#[utoipa::path(get, path = "/v1/users", tag = "users", params(ListParams),
    responses((status = 200, body = Page<User>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn list_users(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<Page<User>>, ApiError> {
    Ok(Json(s.engine.users().list(&p, &q).await?))
}

/// A user: yourself, or anyone for an admin.
#[utoipa::path(get, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = UserId, Path, description = "The user's id")),
    responses((status = 200, body = User), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<UserId>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.engine.users().get(&p, id).await?))
}
