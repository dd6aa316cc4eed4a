//! The finishing touches of the OpenAPI document: what the derives cannot say, said once for
//! every route, so the document describes exactly what the server accepts and answers — and
//! generated clients (openapi-python-client) and schemathesis can hold it to that.
//!
//! - Paths as OpenAPI spells them (axum's wildcard `{*path}` is `{path}`).
//! - Every operation declares its `5XX` answer (an [`ErrorBody`]), beside its own.
//! - Binary bodies (`application/octet-stream`: uploads, parts, downloads) are binary strings,
//!   not arrays of integers.
//! - A schema written out in place where a named one is identical (the items of `Page_*`) is a
//!   `$ref` to it.
//! - `SessionEvent`, an `allOf` over the `oneOf` of its kinds (which generators drop), is a
//!   `oneOf` of one object per kind, each with the common fields, discriminated by `type`.
//! - Rules the validators enforce that a derive cannot state: environment variables (names,
//!   count, values), object paths, template names or ids; and the `Idempotency-Key` header every
//!   `POST` honours, declared on every `POST`.
//!
//! [`ErrorBody`]: onmemos_core::api::ErrorBody

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document `doc`, finished.
pub(crate) fn finish(doc: OpenApi) -> OpenApi {
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return doc;
    };
    finish_value(&mut value);
    // What went in was a document; the edits keep it one.
    serde_json::from_value(value).unwrap_or(doc)
}

fn finish_value(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let renamed: Map<String, Value> = std::mem::take(paths)
            .into_iter()
            .map(|(path, item)| (path.replace("{*", "{"), item))
            .collect();
        *paths = renamed;
        for item in paths.values_mut() {
            for method in METHODS {
                if let Some(op) = item.get_mut(method) {
                    declare_server_errors(op);
                    empty_binary_bodies_allowed(op);
                    constrain_parameters(op);
                    if method == "post" {
                        declare_idempotency_key(op);
                    }
                }
            }
        }
    }
    binary_bodies(doc);
    // Before any named schema is edited, so that copies still equal what they copy.
    reference_named_schemas(doc);
    constrain_schemas(doc);
    flatten_session_event(doc);
}

fn declare_server_errors(op: &mut Value) {
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    responses.entry("5XX").or_insert_with(|| {
        json!({
            "description": "The server or a backend it depends on failed (`internal`, \
                `unavailable` with `Retry-After`, `timeout`, `unsupported`)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    });
}

/// An object's path inside a workspace (`onmemos_core::services::storage`): no empty, `.` or
/// `..` segment, no leading or trailing `/`, no control character or backslash, at most 1,024
/// bytes (segments of at most 255 bytes are checked by the server alone).
const OBJECT_PATH: &str = r"^(?!/)(?!.*//)(?!.*/$)(?!(.*/)?\.{1,2}(/|$))[^\x00-\x1f\x7f-\x9f\\]+$";
/// A template's id (`tpl_…`) or its DNS-label name.
const TEMPLATE_REF: &str = r"^(tpl_[0-9a-f]{32}|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$";
/// `Idempotency-Key`: 1–255 visible ASCII characters.
const IDEMPOTENCY_KEY: &str = r"^[\x21-\x7e]{1,255}$";

fn constrain_parameters(op: &mut Value) {
    for param in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let rule = match (param["in"].as_str(), param["name"].as_str()) {
            (Some("path"), Some("path")) => json!({"type": "string", "minLength": 1,
                "maxLength": 1024, "pattern": OBJECT_PATH}),
            (Some("path"), Some("template")) => json!({"type": "string", "pattern": TEMPLATE_REF}),
            (Some("header"), Some("Idempotency-Key")) => idempotency_key_schema(),
            _ => continue,
        };
        param["schema"] = rule;
    }
}

fn idempotency_key_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY})
}

fn declare_idempotency_key(op: &mut Value) {
    let Some(op) = op.as_object_mut() else { return };
    let params = op
        .entry("parameters")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(params) = params.as_array_mut() else {
        return;
    };
    if params.iter().any(|p| p["name"] == "Idempotency-Key") {
        return;
    }
    params.push(json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "Makes retries safe: a replay with the same key and request gets the \
            stored answer (see docs/api.md)",
        "schema": idempotency_key_schema(),
    }));
}

/// Environment maps and object paths inside the named schemas.
fn constrain_schemas(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(env) = props.get_mut("env").and_then(Value::as_object_mut)
            && env.contains_key("additionalProperties")
        {
            env.insert("maxProperties".into(), json!(64));
            env.insert(
                "propertyNames".into(),
                json!({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"}),
            );
            env.insert(
                "additionalProperties".into(),
                json!({"type": "string", "maxLength": 4096, "pattern": "^[^\\x00]*$"}),
            );
        }
        // Paths a request names (answers list what is stored, which sessions wrote).
        if let Some(path) = props.get_mut("path").and_then(Value::as_object_mut)
            && matches!(name.as_str(), "PresignRequest" | "CreateUpload")
        {
            path.insert("minLength".into(), json!(1));
            path.insert("maxLength".into(), json!(1024));
            path.insert("pattern".into(), json!(OBJECT_PATH));
        }
    }
}

/// A binary request body may be empty (an empty file, an empty last part): not `required`.
fn empty_binary_bodies_allowed(op: &mut Value) {
    if let Some(body) = op.get_mut("requestBody").and_then(Value::as_object_mut)
        && body
            .get("content")
            .and_then(|c| c.get("application/octet-stream"))
            .is_some()
    {
        body.insert("required".into(), json!(false));
    }
}

/// Every `application/octet-stream` content is a binary string; every `text/event-stream` one
/// describes its events (`id`, `event`, and `data` holding the JSON of the declared schema).
fn binary_bodies(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "application/octet-stream"
                    && let Some(media) = child.as_object_mut()
                {
                    media.insert(
                        "schema".into(),
                        json!({"type": "string", "format": "binary"}),
                    );
                } else if key == "text/event-stream"
                    && let Some(media) = child.as_object_mut()
                    && let Some(data) = media.remove("schema")
                {
                    media.insert(
                        "schema".into(),
                        json!({
                            "type": "object",
                            "required": ["data"],
                            "properties": {
                                "id": {"type": "string"},
                                "event": {"type": "string"},
                                "data": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                    "contentSchema": data,
                                },
                            },
                        }),
                    );
                } else {
                    binary_bodies(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(binary_bodies),
        _ => {}
    }
}

/// `SessionEvent` as a `oneOf` of complete objects, one per kind (`SessionEventCreated`, …).
fn flatten_session_event(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let (Some(event), Some(kinds)) = (
        schemas.get("SessionEvent").cloned(),
        schemas
            .get("SessionEventKind")
            .and_then(|k| k.get("oneOf"))
            .and_then(Value::as_array)
            .cloned(),
    ) else {
        return;
    };
    let Some(common) = event
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|parts| parts.iter().find(|p| p.get("properties").is_some()))
        .cloned()
    else {
        return;
    };
    let mut one_of = Vec::new();
    let mut mapping = Map::new();
    for kind in kinds {
        let Some(tag) = kind
            .pointer("/properties/type/enum/0")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        let mut merged = kind.clone();
        let props = merged
            .get_mut("properties")
            .and_then(Value::as_object_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let mut all: BTreeMap<String, Value> = props.into_iter().collect();
        if let Some(common_props) = common.get("properties").and_then(Value::as_object) {
            all.extend(common_props.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut required: Vec<Value> = common
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in kind
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !required.contains(r) {
                required.push(r.clone());
            }
        }
        merged["properties"] = Value::Object(all.into_iter().collect());
        merged["required"] = Value::Array(required);
        let name = format!("SessionEvent{}", camel(&tag));
        mapping.insert(tag, json!(format!("#/components/schemas/{name}")));
        one_of.push(json!({"$ref": format!("#/components/schemas/{name}")}));
        schemas.insert(name, merged);
    }
    let description = event.get("description").cloned().unwrap_or(Value::Null);
    schemas.insert(
        "SessionEvent".into(),
        json!({
            "oneOf": one_of,
            "discriminator": {"propertyName": "type", "mapping": mapping},
            "description": description,
        }),
    );
}

/// `credits_low` → `CreditsLow`.
fn camel(tag: &str) -> String {
    tag.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Replaces a schema written out in place by a `$ref` to the named schema it equals.
fn reference_named_schemas(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    else {
        return;
    };
    // Only objects and enums are worth a name; small scalars (`i64`) stay inline.
    let named: Vec<(String, Value)> = schemas
        .iter()
        .filter(|(_, s)| s.get("properties").is_some() || s.get("oneOf").is_some())
        .map(|(name, s)| (name.clone(), s.clone()))
        .collect();
    if let Some(paths) = doc.get_mut("paths") {
        replace_copies(paths, &named, None);
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            replace_copies(schema, &named, Some(name));
        }
    }
}

/// Within `value` (the schema named `own`, if it is one), every copy of a named schema but
/// `value` itself becomes a `$ref`.
fn replace_copies(value: &mut Value, named: &[(String, Value)], own: Option<&str>) {
    let children: Box<dyn Iterator<Item = &mut Value>> = match value {
        Value::Object(map) => Box::new(map.values_mut()),
        Value::Array(items) => Box::new(items.iter_mut()),
        _ => return,
    };
    for child in children {
        if let Some((name, _)) = named
            .iter()
            .find(|(name, schema)| Some(name.as_str()) != own && schema == child)
        {
            *child = json!({"$ref": format!("#/components/schemas/{name}")});
        } else {
            replace_copies(child, named, own);
        }
    }
}

/// Request bodies checked against the document: a validator per named schema, built once
/// from [`crate::openapi`]. A body serde accepted must also be one the document allows — the
/// patterns, bounds and shapes it states (a positional array where an object is declared, say)
/// — so what the server accepts is exactly what the document says.
static BODY_SCHEMAS: LazyLock<HashMap<String, jsonschema::Validator>> = LazyLock::new(|| {
    let Ok(doc) = serde_json::to_value(crate::openapi()) else {
        return HashMap::new();
    };
    let components = doc.get("components").cloned().unwrap_or(Value::Null);
    let Some(names) = components.get("schemas").and_then(Value::as_object) else {
        return HashMap::new();
    };
    names
        .keys()
        .filter_map(|name| {
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": format!("#/components/schemas/{name}"),
                "components": components,
            });
            match jsonschema::validator_for(&schema) {
                Ok(validator) => Some((name.clone(), validator)),
                Err(e) => {
                    tracing::error!(schema = %name, error = %e, "a schema of the OpenAPI document does not compile");
                    None
                }
            }
        })
        .collect()
});

/// Checks `body` against the document's schema `name` (bodies of types the document does not
/// name — an embedder's own — pass); the error names the first field that broke a rule.
pub(crate) fn check_body(name: &str, body: &Value) -> Result<(), onmemos_core::Error> {
    let Some(validator) = BODY_SCHEMAS.get(name) else {
        return Ok(());
    };
    match validator.iter_errors(body).next() {
        None => Ok(()),
        Some(e) => {
            let field = dotted(&e.instance_path().to_string());
            let message = if field.is_empty() {
                format!("the request body does not match {name}: {e}")
            } else {
                format!("{field}: {e}")
            };
            Err(onmemos_core::Error::invalid(field, message))
        }
    }
}

/// `/configurations/0/template` → `configurations[0].template`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_declare_server_errors_and_binary_bodies_are_strings() {
        let mut doc = json!({
            "paths": {"/f/{*path}": {"put": {
                "requestBody": {"content": {"application/octet-stream": {
                    "schema": {"type": "array", "items": {"type": "integer"}}}}},
                "responses": {"201": {"description": "ok"}}
            }}},
            "components": {"schemas": {}}
        });
        finish_value(&mut doc);
        let op = &doc["paths"]["/f/{path}"]["put"];
        assert_eq!(
            op["requestBody"]["content"]["application/octet-stream"]["schema"],
            json!({"type": "string", "format": "binary"})
        );
        assert_eq!(
            op["responses"]["5XX"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }

    #[test]
    fn bodies_are_held_to_the_document() {
        let good = json!({"name": "lab"});
        assert!(check_body("CreateWorkspace", &good).is_ok());
        let bad_name = check_body("CreateWorkspace", &json!({"name": "Not A Label"}))
            .err()
            .unwrap_or_else(|| panic!("a name breaking the pattern passed"));
        assert_eq!(bad_name.field(), Some("name"));
        let positional = check_body(
            "OptimizationRequest",
            &json!({"snapshot": {"taken_at": "2026-01-01T00:00:00Z", "nodes": [], "pods": [],
                "workloads": [{"name": "w", "replicas": 1, "requests":
                    {"cpu_millis": 1, "memory_bytes": 1, "gpus": 0, "pods": 1},
                    "tolerations": [[null, null]]}]}}),
        )
        .err()
        .unwrap_or_else(|| panic!("a positional toleration passed"));
        assert_eq!(
            positional.field(),
            Some("snapshot.workloads[0].tolerations[0]")
        );
        assert!(check_body("NotInTheDocument", &json!([1])).is_ok());
        assert_eq!(
            dotted("/configurations/0/template"),
            "configurations[0].template"
        );
    }

    #[test]
    fn copies_of_named_schemas_become_references() {
        let ws = json!({"type": "object", "properties": {"id": {"type": "string"}}});
        let mut doc = json!({
            "paths": {},
            "components": {"schemas": {
                "Workspace": ws,
                "Page": {"type": "object", "properties": {"items": {"type": "array", "items": ws}}}
            }}
        });
        finish_value(&mut doc);
        assert_eq!(
            doc["components"]["schemas"]["Page"]["properties"]["items"]["items"],
            json!({"$ref": "#/components/schemas/Workspace"})
        );
        assert_eq!(doc["components"]["schemas"]["Workspace"], ws);
    }
}
