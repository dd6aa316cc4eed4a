use crate::response::Json;
use axum::extract::State;
use axum::http::StatusCode;
use onmemos_core::api::{CreateWorkspace, ErrorBody, ListParams, Page, UpdateWorkspace};
use onmemos_core::id::WorkspaceId;
use onmemos_core::model::Workspace;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Authorized, needs};
use crate::state::AppState;

/// Creates a workspace.
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces", request_body = CreateWorkspace,
    responses((status = 201, body = Workspace), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn create_workspace(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::WorkspacesWrite>,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<(StatusCode, Json<Workspace>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(s.engine.workspaces().create(&p, body).await?),
    ))
}

/// Lists the caller's workspaces, oldest first.
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", params(ListParams),
    responses((status = 200, body = Page<Workspace>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn list_workspaces(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<Page<Workspace>>, ApiError> {
    Ok(Json(s.engine.workspaces().list(&p, &q).await?))
}

/// One of the caller's workspaces.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}", tag = "workspaces",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id")),
    responses((status = 200, body = Workspace), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_workspace(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> Result<Json<Workspace>, ApiError> {
    Ok(Json(s.engine.workspaces().get(&p, id).await?))
}

/// Changes a workspace's name, description or env.
#[utoipa::path(patch, path = "/v1/workspaces/{workspace_id}", tag = "workspaces",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id")),
    request_body = UpdateWorkspace,
    responses((status = 200, body = Workspace), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn update_workspace(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::WorkspacesWrite>,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiJson(body): ApiJson<UpdateWorkspace>,
) -> Result<Json<Workspace>, ApiError> {
    Ok(Json(s.engine.workspaces().update(&p, id, body).await?))
}

/// Deletes a workspace.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}", tag = "workspaces",
    params(("workspace_id" = WorkspaceId, Path, description = "The workspace's id")),
    responses((status = 204, description = "Deleted"), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn delete_workspace(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> Result<StatusCode, ApiError> {
    s.engine.workspaces().delete(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
