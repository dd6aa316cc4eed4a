//! The routes of the API, with their OpenAPI descriptions.

mod api_keys;
mod credits;
mod estimates;
mod health;
mod optimizer;
pub(crate) mod sessions;
pub(crate) mod storage;
mod templates;
mod users;
mod workspaces;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OnMemOS API",
        description = "Metered cloud workspaces: sessions, storage, credits and cost optimization.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    // Query parameters' enums are not collected from the handlers: listed here so their
    // `$ref`s resolve.
    components(schemas(onmemos_core::api::TemplateSort)),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "users", description = "Account holders (admin)"),
        (name = "api-keys", description = "Scoped, revocable API keys"),
        (name = "workspaces", description = "Isolated environments of a user"),
        (name = "templates", description = "Recipes for sessions"),
        (name = "sessions", description = "Running environments: lifecycle, exec, events, shell"),
        (name = "estimates", description = "What a session would cost"),
        (name = "optimizer", description = "Cost recommendations for the clusters underneath"),
        (name = "credits", description = "Prepaid credits, transfers and prices"),
        (name = "storage", description = "Workspace files: streaming upload and download, listings, presigned URLs, usage"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("onm_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Every documented route, and the OpenAPI document describing them.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(users::me))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user))
        .routes(routes!(api_keys::create_key, api_keys::list_keys))
        .routes(routes!(api_keys::get_key, api_keys::revoke_key))
        .routes(routes!(
            workspaces::create_workspace,
            workspaces::list_workspaces
        ))
        .routes(routes!(
            workspaces::get_workspace,
            workspaces::update_workspace,
            workspaces::delete_workspace
        ))
        .routes(routes!(
            templates::create_template,
            templates::list_templates
        ))
        .routes(routes!(templates::get_template, templates::delete_template))
        .routes(routes!(sessions::create_session, sessions::list_sessions))
        .routes(routes!(sessions::get_session, sessions::delete_session))
        .routes(routes!(sessions::stop_session))
        .routes(routes!(sessions::exec))
        .routes(routes!(sessions::exec_stream))
        .routes(routes!(sessions::events))
        .routes(routes!(sessions::event_stream))
        .routes(routes!(crate::shell::shell))
        .routes(routes!(estimates::quote))
        .routes(routes!(estimates::compare))
        .routes(routes!(optimizer::recommendations))
        .routes(routes!(credits::balance))
        .routes(routes!(credits::transfers))
        .routes(routes!(credits::purchase))
        .routes(routes!(credits::grant))
        .routes(routes!(credits::pricing))
        .routes(routes!(
            storage::put_object,
            storage::get_object,
            storage::head_object,
            storage::delete_object
        ))
        .routes(routes!(storage::list_objects))
        .routes(routes!(storage::presign))
        .routes(routes!(storage::usage))
        .routes(routes!(storage::create_upload))
        .routes(routes!(storage::get_upload, storage::abort_upload))
        .routes(routes!(storage::put_part))
        .routes(routes!(storage::complete_upload))
}
