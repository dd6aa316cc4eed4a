//! Decoding rows into domain types, and the value conversions every query uses.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use onmemos_core::api::PageRequest;
use onmemos_core::id::UserId;
use onmemos_core::model::{
    ApiKey, Resources, Role, SessionLimits, Template, TemplateCategory, TransferId, User, Workspace,
};
use onmemos_core::{Error, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::error::{SqlxResultExt, corrupt};

pub(crate) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn at(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt("timestamp", ms))
}

pub(crate) fn opt_at(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(at).transpose()
}

pub(crate) fn parse<T: FromStr>(column: &'static str, text: &str) -> Result<T> {
    text.parse().map_err(|_| corrupt(column, text))
}

/// A stored transfer id of `column`.
pub(crate) fn transfer_id(column: &'static str, text: String) -> Result<TransferId> {
    TransferId::new(text.clone()).map_err(|_| corrupt(column, text))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(column: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|_| corrupt(column, text))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::internal("could not encode JSON").with_source(e))
}

pub(crate) fn int<T: TryFrom<V>, V: Copy + std::fmt::Display>(
    column: &'static str,
    value: V,
) -> Result<T> {
    T::try_from(value).map_err(|_| corrupt(column, value))
}

/// `value` as a column value, or an error naming `what` when it does not fit.
pub(crate) fn i64_of(value: u64, what: &'static str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::invalid(what, format!("{what} is too large")))
}

/// A row's columns by name, whichever driver read it: `None` for NULL.
pub(crate) trait Columns {
    /// The text in `column`.
    fn text(&self, column: &'static str) -> Result<Option<String>>;
    /// The integer in `column`.
    fn num(&self, column: &'static str) -> Result<Option<i64>>;
}

impl Columns for AnyRow {
    fn text(&self, column: &'static str) -> Result<Option<String>> {
        self.try_get(column).db_context("read a row")
    }

    fn num(&self, column: &'static str) -> Result<Option<i64>> {
        self.try_get(column).db_context("read a row")
    }
}

/// A column that cannot be NULL, from `value` (read by [`Columns`]).
pub(crate) fn required<T>(column: &'static str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| corrupt(column, "NULL"))
}

pub(crate) fn user_from(row: &AnyRow) -> Result<User> {
    let role: String = row.try_get("role").db_context("read users.role")?;
    Ok(User {
        id: parse("users.id", row.try_get("id").db_context("read users.id")?)?,
        email: row.try_get("email").db_context("read users.email")?,
        name: row.try_get("name").db_context("read users.name")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("users.role", &role))?,
        created_at: at(row
            .try_get("created_at")
            .db_context("read users.created_at")?)?,
    })
}

pub(crate) fn api_key_from(row: &AnyRow) -> Result<ApiKey> {
    let scopes: String = row.try_get("scopes").db_context("read api_keys.scopes")?;
    Ok(ApiKey {
        id: parse(
            "api_keys.id",
            row.try_get("id").db_context("read api_keys.id")?,
        )?,
        user_id: parse(
            "api_keys.user_id",
            row.try_get("user_id").db_context("read api_keys.user_id")?,
        )?,
        name: row.try_get("name").db_context("read api_keys.name")?,
        prefix: row.try_get("prefix").db_context("read api_keys.prefix")?,
        scopes: json("api_keys.scopes", &scopes)?,
        created_at: at(row.try_get("created_at").db_context("read api_keys")?)?,
        expires_at: opt_at(row.try_get("expires_at").db_context("read api_keys")?)?,
        revoked_at: opt_at(row.try_get("revoked_at").db_context("read api_keys")?)?,
        last_used_at: opt_at(row.try_get("last_used_at").db_context("read api_keys")?)?,
    })
}

pub(crate) fn workspace_from(row: &AnyRow) -> Result<Workspace> {
    let env: String = row.try_get("env").db_context("read workspaces.env")?;
    Ok(Workspace {
        id: parse(
            "workspaces.id",
            row.try_get("id").db_context("read workspaces")?,
        )?,
        owner_id: parse(
            "workspaces.owner_id",
            row.try_get("owner_id").db_context("read workspaces")?,
        )?,
        name: row.try_get("name").db_context("read workspaces")?,
        description: row.try_get("description").db_context("read workspaces")?,
        env: json("workspaces.env", &env)?,
        created_at: at(row.try_get("created_at").db_context("read workspaces")?)?,
        updated_at: at(row.try_get("updated_at").db_context("read workspaces")?)?,
    })
}

pub(crate) fn template_from(row: &AnyRow) -> Result<Template> {
    let get_i64 = |c: &'static str| -> Result<i64> { row.try_get(c).db_context("read templates") };
    let owner: Option<String> = row.try_get("owner_id").db_context("read templates")?;
    let category: String = row.try_get("category").db_context("read templates")?;
    let env: String = row.try_get("env").db_context("read templates")?;
    let tags: String = row.try_get("tags").db_context("read templates")?;
    let owner_id = owner
        .map(|o| parse::<UserId>("templates.owner_id", &o))
        .transpose()?;
    Ok(Template {
        id: parse(
            "templates.id",
            row.try_get("id").db_context("read templates")?,
        )?,
        name: row.try_get("name").db_context("read templates")?,
        builtin: owner_id.is_none(),
        owner_id,
        description: row.try_get("description").db_context("read templates")?,
        category: TemplateCategory::parse(&category)
            .ok_or_else(|| corrupt("templates.category", &category))?,
        image: row.try_get("image").db_context("read templates")?,
        resources: Resources {
            cpu_millis: int("templates.cpu_millis", get_i64("cpu_millis")?)?,
            memory_mib: int("templates.memory_mib", get_i64("memory_mib")?)?,
            gpu: int("templates.gpu", get_i64("gpu")?)?,
            disk_gib: int("templates.disk_gib", get_i64("disk_gib")?)?,
        },
        env: json("templates.env", &env)?,
        default_limits: SessionLimits {
            max_duration_secs: int("templates.max_duration_secs", get_i64("max_duration_secs")?)?,
            max_cost_micros: get_i64("max_cost_micros")?,
            idle_timeout_secs: int("templates.idle_timeout_secs", get_i64("idle_timeout_secs")?)?,
        },
        tags: json("templates.tags", &tags)?,
        expected_start_ms: int("templates.expected_start_ms", get_i64("expected_start_ms")?)?,
        usage_count: int("templates.usage_count", get_i64("usage_count")?)?,
        created_at: at(get_i64("created_at")?)?,
    })
}

/// The page size plus one: the extra row only tells whether a next page exists.
pub(crate) fn overfetch(limit: u32) -> i64 {
    i64::from(limit) + 1
}

pub(crate) fn after<I: ToString>(page: &PageRequest<I>) -> String {
    page.after
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}
