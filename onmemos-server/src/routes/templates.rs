use crate::response::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use onmemos_core::api::{CreateTemplate, ErrorBody, Page, TemplateListParams};
use onmemos_core::model::Template;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Auth, Authorized, needs};
use crate::state::AppState;

/// Creates a custom template.
#[utoipa::path(post, path = "/v1/templates", tag = "templates", request_body = CreateTemplate,
    responses((status = 201, body = Template), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn create_template(
    State(s): State<AppState>,
    Authorized(p, _): Authorized<needs::TemplatesWrite>,
    ApiJson(body): ApiJson<CreateTemplate>,
) -> Result<(StatusCode, Json<Template>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(s.engine.templates().create(&p, body).await?),
    ))
}

/// Lists the built-in templates and the caller's own, by category and tag.
#[utoipa::path(get, path = "/v1/templates", tag = "templates", params(TemplateListParams),
    responses((status = 200, body = Page<Template>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn list_templates(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<TemplateListParams>,
) -> Result<Json<Page<Template>>, ApiError> {
    Ok(Json(s.engine.templates().list(&p, &q).await?))
}

/// A template, by id (`tpl_…`) or name.
#[utoipa::path(get, path = "/v1/templates/{template}", tag = "templates",
    params(("template" = String, Path, description = "The template's id or name")),
    responses((status = 200, body = Template), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_template(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(template): Path<String>,
) -> Result<Json<Template>, ApiError> {
    Ok(Json(s.engine.templates().get(&p, &template).await?))
}

/// Deletes one of the caller's custom templates.
#[utoipa::path(delete, path = "/v1/templates/{template}", tag = "templates",
    params(("template" = String, Path, description = "The template's id or name")),
    responses((status = 204, description = "Deleted"), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn delete_template(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(template): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.engine.templates().delete(&p, &template).await?;
    Ok(StatusCode::NO_CONTENT)
}
