use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::model::{ApiKey, Resources, Role, Scope, SessionLimits, TemplateCategory, User};
use crate::validation;

/// `POST /v1/users` (admin): create a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The user's email address.
    #[validate(email, length(max = 254))]
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(
        length(min = 1, max = 128),
        custom(function = "validation::single_line")
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub name: Option<String>,
    /// The role (default `member`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// A new user and the first API key for them (its secret is shown only here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedUser {
    /// The user.
    pub user: User,
    /// The user's first key.
    pub api_key: CreatedApiKey,
}

/// `POST /v1/api-keys`: create a key for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A name to recognise the key by.
    #[validate(
        length(min = 1, max = 128),
        custom(function = "validation::single_line")
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub name: String,
    /// The scopes; default: the caller's own scopes. Must be a subset of the caller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
    /// When the key stops working; must be in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new API key with its secret, which is shown only this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    /// The key's metadata.
    pub key: ApiKey,
    /// The secret (`onm_…`); store it now, it cannot be shown again.
    pub secret: String,
}

/// `POST /v1/workspaces`: create a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// A DNS-label name, unique among the caller's workspaces.
    #[validate(custom(function = "validation::dns_label"))]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    )]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 1024))]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub description: Option<String>,
    /// Environment variables for every session of the workspace.
    #[serde(default)]
    #[validate(custom(function = "validation::env_vars"))]
    pub env: BTreeMap<String, String>,
}

/// `PATCH /v1/workspaces/{id}`: change a workspace; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    /// A new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "validation::dns_label"))]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    )]
    pub name: Option<String>,
    /// A new description; an empty string clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 1024))]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub description: Option<String>,
    /// New environment variables, replacing the old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "validation::env_vars"))]
    pub env: Option<BTreeMap<String, String>>,
}

/// `POST /v1/templates`: create a custom template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// A DNS-label name, unique among the caller's templates and not a built-in's.
    #[validate(custom(function = "validation::dns_label"))]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    )]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 1024))]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub description: Option<String>,
    /// The category (default `custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<TemplateCategory>,
    /// The container image.
    #[validate(length(max = 256), custom(function = "validation::image_ref"))]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 256,
            pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
        )
    )]
    pub image: String,
    /// The resources of each session.
    #[validate(nested)]
    pub resources: Resources,
    /// Environment variables of each session.
    #[serde(default)]
    #[validate(custom(function = "validation::env_vars"))]
    pub env: BTreeMap<String, String>,
    /// Default limits (default: the server's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub default_limits: Option<SessionLimits>,
    /// Tags for filtering.
    #[serde(default)]
    #[validate(custom(function = "validation::tags"))]
    pub tags: Vec<String>,
    /// Typical start-up time in milliseconds (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(max = 3_600_000))]
    #[cfg_attr(feature = "openapi", schema(maximum = 3_600_000))]
    pub expected_start_ms: Option<u32>,
}

/// The query parameters of `GET /v1/templates`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct TemplateListParams {
    /// Only templates of this category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<TemplateCategory>,
    /// Only templates with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `popular`: the most used first (by `usage_count`; one page, no cursor). Default: by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<TemplateSort>,
    /// Items per page (1–200, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// How templates are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TemplateSort {
    /// The most used first.
    Popular,
}

/// The body of `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or what is not ready.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// Where sessions run and how they are isolated (`/readyz` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputeHealth>,
}

/// How the server's compute runs sessions, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComputeHealth {
    /// The compute's name (`local`, `kubernetes`).
    pub name: String,
    /// The sandbox: `enforced`, `off` (the operator's choice) or `unavailable` (sessions are
    /// refused until it works).
    pub sandbox: SandboxState,
    /// How memory, CPU and process limits are enforced.
    pub limits: LimitEnforcement,
}

/// How a compute isolates sessions from each other and from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// Every session runs sandboxed (bubblewrap namespaces, pods).
    Enforced,
    /// The operator chose to run sessions without a sandbox (`local://?sandbox=off`).
    Off,
    /// The sandbox is required but cannot be used here: sessions are refused.
    Unavailable,
}

/// How a compute holds sessions to their memory, CPU and process limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LimitEnforcement {
    /// A cgroup (v2) per session: memory, CPU and process count, and a kill of the whole tree.
    CgroupV2,
    /// A cgroup per session in the v1 memory, cpu and pids hierarchies.
    CgroupV1,
    /// The container runtime of a pod (requests and limits).
    Container,
    /// Only an address-space rlimit (`prlimit --as`), where no cgroup can be made: it counts
    /// virtual memory, which breaks Go, the JVM, Node and CUDA.
    AddressSpace,
    /// None.
    None,
}
