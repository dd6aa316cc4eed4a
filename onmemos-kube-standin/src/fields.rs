//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`) of the fields the
//! stand-in knows: the top level of each kind and `metadata`. `Strict` refuses an unknown
//! field with 400 `strict decoding error: unknown field "…"`; `Warn` answers with a
//! `Warning` header; `Ignore` (the default here, as for clients that do not ask) lets it pass.

use serde_json::Value;

use crate::resources::ResourceType;
use crate::status::ApiError;

const METADATA: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn top_level(resource: &ResourceType) -> &'static [&'static str] {
    match (resource.group, resource.plural) {
        ("", "configmaps") => &["data", "binaryData", "immutable"],
        ("", "secrets") => &["data", "stringData", "type", "immutable"],
        ("", "serviceaccounts") => &[
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        ("", "events") => &[
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ],
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => &["rules", "aggregationRule"],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            &["subjects", "roleRef"]
        }
        _ => &["spec", "status"],
    }
}

/// The fields of `object` the stand-in does not know, as dotted paths.
pub fn unknown(resource: &ResourceType, object: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(map) = object.as_object() {
        for key in map.keys() {
            if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                && !top_level(resource).contains(&key.as_str())
            {
                out.push(key.clone());
            }
        }
    }
    if let Some(meta) = object.get("metadata").and_then(Value::as_object) {
        for key in meta.keys() {
            if !METADATA.contains(&key.as_str()) {
                out.push(format!("metadata.{key}"));
            }
        }
    }
    out
}

/// What the request's `fieldValidation` makes of `object`: an error under `Strict`, a warning
/// under `Warn`, nothing otherwise.
pub fn check(
    resource: &ResourceType,
    object: &Value,
    directive: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let unknown = unknown(resource, object);
    match directive {
        Some("Strict") if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Some("Warn") if !unknown.is_empty() => Ok(Some(
            unknown
                .iter()
                .map(|f| format!("299 - \"unknown field \\\"{f}\\\"\""))
                .collect::<Vec<_>>()
                .join(", "),
        )),
        None | Some("" | "Ignore" | "Warn" | "Strict") => Ok(None),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", not {other:?}"
        ))),
    }
}
