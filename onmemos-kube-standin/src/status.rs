//! `v1 Status` errors with the apiserver's codes, reasons, messages and details
//! (`k8s.io/apimachinery/pkg/api/errors`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::resources::ResourceType;

/// An error the stand-in answers with, as the apiserver would: an HTTP status and a `Status`
/// object.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Value>,
    retry_after: Option<u32>,
}

/// The `details` of a Status naming a resource: `group` (omitted for the core group), `kind`
/// (the plural resource name, as the apiserver puts it) and `name`.
fn details(resource: &ResourceType, name: &str) -> Value {
    let mut d = json!({ "kind": resource.plural });
    if !resource.group.is_empty() {
        d["group"] = json!(resource.group);
    }
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    d
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 `NotFound`: `pods "x" not found`.
    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", resource.qualified()),
        )
        .with_details(details(resource, name))
    }

    /// 404 for a path that names no resource the server serves.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 `AlreadyExists`: `pods "x" already exists`.
    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", resource.qualified()),
        )
        .with_details(details(resource, name))
    }

    /// 409 `Conflict` for a write with a stale `resourceVersion`.
    pub fn stale(resource: &ResourceType, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 `Conflict`: `Operation cannot be fulfilled on pods "x": <why>`.
    pub fn conflict(resource: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                resource.qualified()
            ),
        )
        .with_details(details(resource, name))
    }

    /// 422 `Invalid`: `Pod "x" is invalid: <field>: <what>`, with one cause per field.
    pub fn invalid(resource: &ResourceType, name: &str, causes: &[FieldError]) -> Self {
        let kind = if resource.group.is_empty() {
            resource.kind.to_owned()
        } else {
            format!("{}.{}", resource.kind, resource.group)
        };
        let listed: Vec<String> = causes.iter().map(FieldError::to_string).collect();
        let message = match listed.len() {
            0 => format!("{kind} {name:?} is invalid"),
            1 => format!("{kind} {name:?} is invalid: {}", listed[0]),
            _ => format!("{kind} {name:?} is invalid: [{}]", listed.join(", ")),
        };
        let mut d = json!({
            "name": name,
            "kind": resource.kind,
            "causes": causes.iter().map(FieldError::cause).collect::<Vec<_>>(),
        });
        if !resource.group.is_empty() {
            d["group"] = json!(resource.group);
        }
        Self::new(422, "Invalid", message).with_details(d)
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422 `Invalid` for request options (`ListOptions.meta.k8s.io "" is invalid: …`).
    pub fn invalid_options(field: &str, detail: &str) -> Self {
        let cause = FieldError::forbidden(field, detail);
        Self::new(
            422,
            "Invalid",
            format!("ListOptions.meta.k8s.io \"\" is invalid: {cause}"),
        )
        .with_details(json!({
            "group": "meta.k8s.io",
            "kind": "ListOptions",
            "causes": [cause.cause()],
        }))
    }

    /// 403 `Forbidden`: `pods "x" is forbidden: <why>`.
    pub fn forbidden(resource: &ResourceType, name: &str, why: &str) -> Self {
        let message = if name.is_empty() {
            format!("{} is forbidden: {why}", resource.qualified())
        } else {
            format!("{} {name:?} is forbidden: {why}", resource.qualified())
        };
        Self::new(403, "Forbidden", message).with_details(details(resource, name))
    }

    /// 403 `Forbidden` naming a resource by its qualified name (`poddisruptionbudget.policy`).
    pub fn forbidden_named(qualified: &str, name: &str, why: &str) -> Self {
        let (kind, group) = qualified.split_once('.').unwrap_or((qualified, ""));
        let mut d = json!({ "kind": kind, "name": name });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        Self::new(
            403,
            "Forbidden",
            format!("{qualified} {name:?} is forbidden: {why}"),
        )
        .with_details(d)
    }

    /// 405 `MethodNotAllowed`: `<action> is not supported on resources of kind "pods"`.
    pub fn method_not_supported(resource: &ResourceType, action: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "{action} is not supported on resources of kind {:?}",
                resource.qualified()
            ),
        )
        .with_details(details(resource, ""))
    }

    /// 410 `Expired`: `too old resource version: <asked> (<oldest>)`.
    pub fn expired(asked: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {asked} ({oldest})"),
        )
    }

    /// 410 `Expired` for a `continue` token older than what the server keeps.
    pub fn expired_continue() -> Self {
        Self::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        )
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml ({content_type:?})"
            ),
        )
    }

    /// 429 `TooManyRequests`, with `Retry-After` and the details' `retryAfterSeconds`.
    pub fn too_many_requests(
        message: impl Into<String>,
        retry_after: u32,
        causes: Vec<Value>,
    ) -> Self {
        let mut d = json!({ "retryAfterSeconds": retry_after });
        if !causes.is_empty() {
            d["causes"] = Value::Array(causes);
        }
        let mut e = Self::new(429, "TooManyRequests", message).with_details(d);
        // The apiserver sends the header only for a positive delay.
        e.retry_after = (retry_after > 0).then_some(retry_after);
        e
    }

    /// 500 `InternalError`: `Internal error occurred: <why>`.
    pub fn internal(why: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {why}"),
        )
        .with_details(json!({ "causes": [{ "message": why.to_string() }] }))
    }

    /// 504 `Timeout`: `Timeout: <message>` (fault injection).
    pub fn timeout(message: &str) -> Self {
        let mut e = Self::new(504, "Timeout", format!("Timeout: {message}"))
            .with_details(json!({ "retryAfterSeconds": 1 }));
        e.retry_after = Some(1);
        e
    }

    /// 503 `ServiceUnavailable` (fault injection).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reason (`NotFound`, `Conflict`…).
    pub fn reason(&self) -> &str {
        self.reason
    }

    /// The `v1 Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, axum::Json(self.to_status())).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(v) = seconds.to_string().parse()
        {
            response.headers_mut().insert("retry-after", v);
        }
        response
    }
}

/// One field's error in an `Invalid` Status (`k8s.io/apimachinery/pkg/util/validation/field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`,
    /// `FieldValueForbidden`, `FieldValueDuplicate`.
    pub kind: &'static str,
    /// The JSON path (`metadata.name`, `spec.replicas`).
    pub field: String,
    /// The value, for `FieldValueInvalid` and `FieldValueNotSupported`.
    pub value: Option<String>,
    /// What is wrong.
    pub detail: String,
}

impl FieldError {
    /// `Invalid value: "<value>": <detail>`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: "FieldValueInvalid",
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// `Required value: <detail>`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: "FieldValueRequired",
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: "FieldValueForbidden",
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    fn body(&self) -> String {
        match (self.kind, &self.value) {
            ("FieldValueInvalid", Some(v)) => format!("Invalid value: {v:?}: {}", self.detail),
            ("FieldValueRequired", _) => format!("Required value: {}", self.detail),
            ("FieldValueForbidden", _) => format!("Forbidden: {}", self.detail),
            (_, _) => self.detail.clone(),
        }
    }

    fn cause(&self) -> Value {
        json!({ "reason": self.kind, "message": self.body(), "field": self.field })
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}
