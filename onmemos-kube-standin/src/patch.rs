//! `PATCH`: JSON patch (RFC 6902), merge patch (RFC 7396), strategic merge patch with the
//! merge keys of the built-in types, and server-side apply as an upsert of the applied
//! configuration.

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::api::{Query, Target, parse_body};
use crate::status::ApiError;
use crate::store::Store;

/// The merge key of a list field under strategic merge, `None` for lists replaced whole
/// (`tolerations`, `taints`, and every list not named here).
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "finalizers" => None,
        _ => None,
    }
}

/// Applies a strategic merge `patch` to `target` (`$patch: delete` removes a list item or
/// a map, `$patch: replace` replaces a map; `null` deletes a field).
pub fn strategic_merge(target: &Value, patch: &Value) -> Value {
    match (target, patch) {
        (_, Value::Object(p)) if p.get("$patch").and_then(Value::as_str) == Some("replace") => {
            let mut p = p.clone();
            p.remove("$patch");
            Value::Object(p)
        }
        (Value::Object(t), Value::Object(p)) => {
            let mut out = t.clone();
            for (k, v) in p {
                if k.starts_with("$setElementOrder/")
                    || k == "$patch"
                    || k.starts_with("$retainKeys")
                {
                    continue;
                }
                match v {
                    Value::Null => {
                        out.remove(k);
                    }
                    Value::Array(items) => {
                        let merged = match (merge_key(k), out.get(k)) {
                            (Some(key), Some(Value::Array(existing))) => {
                                merge_list(existing, items, key)
                            }
                            _ => Value::Array(
                                items
                                    .iter()
                                    .filter(|i| i.get("$patch").is_none())
                                    .cloned()
                                    .collect(),
                            ),
                        };
                        out.insert(k.clone(), merged);
                    }
                    Value::Object(_) => {
                        let base = out.get(k).cloned().unwrap_or(Value::Object(Map::new()));
                        out.insert(k.clone(), strategic_merge(&base, v));
                    }
                    other => {
                        out.insert(k.clone(), other.clone());
                    }
                }
            }
            Value::Object(out)
        }
        (_, p) => p.clone(),
    }
}

fn merge_list(existing: &[Value], patch: &[Value], key: &str) -> Value {
    let mut out: Vec<Value> = existing.to_vec();
    for item in patch {
        let id = item.get(key);
        let directive = item.get("$patch").and_then(Value::as_str);
        let position = id.and_then(|id| out.iter().position(|e| e.get(key) == Some(id)));
        match (directive, position) {
            (Some("delete"), Some(i)) => {
                out.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => out[i] = strategic_merge(&out[i], item),
            (_, None) => out.push(item.clone()),
        }
    }
    Value::Array(out)
}

/// Applies the patch of a `PATCH` request to `name`; the object and whether it was created
/// (server-side apply of a missing object).
pub(crate) fn apply(
    store: &Store,
    target: &Target,
    name: &str,
    sub: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    query: &Query,
) -> Result<(Value, bool), ApiError> {
    let resource = target.resource;
    if resource.read_only {
        return Err(ApiError::method_not_supported(resource, "patch"));
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let dry_run = matches!(query.get("dryRun"), Some("All"));
    let patch = parse_body(headers, body)?;
    let status = sub == Some("status");
    let scale = sub == Some("scale");
    let kind = content_type.as_str();
    if kind == "application/apply-patch+yaml" {
        if query.get("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        if !patch.is_object() {
            return Err(ApiError::bad_request("an apply patch must be an object"));
        }
        match store.get(resource, &target.namespace, name) {
            Err(e) if e.code() == 404 && !status && !scale => {
                let mut object = patch;
                object["metadata"]["name"] = json!(name);
                let created = store.create(resource, &target.namespace, object, dry_run)?;
                return Ok((created, true));
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    let patched = store.modify(
        resource,
        &target.namespace,
        name,
        status,
        dry_run,
        |current| {
            let base = if scale {
                crate::scale::scale_of(current)
            } else {
                current.clone()
            };
            let mut next = match kind {
                "application/json-patch+json" => {
                    let ops: json_patch::Patch =
                        serde_json::from_value(patch.clone()).map_err(|e| {
                            ApiError::bad_request(format!("the JSON patch is not valid: {e}"))
                        })?;
                    let mut doc = base.clone();
                    json_patch::patch(&mut doc, &ops).map_err(|e| {
                        ApiError::invalid(
                            resource,
                            name,
                            &[crate::status::FieldError::invalid("", "", e.to_string())],
                        )
                    })?;
                    doc
                }
                "application/merge-patch+json" => {
                    let mut doc = base.clone();
                    json_patch::merge(&mut doc, &patch);
                    doc
                }
                "application/strategic-merge-patch+json" | "application/apply-patch+yaml" => {
                    strategic_merge(&base, &patch)
                }
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            if !scale {
                crate::fields::check(resource, &next, query.get("fieldValidation"))?;
            }
            if scale {
                let replicas = next
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| ApiError::bad_request("a Scale needs spec.replicas"))?;
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        resource,
                        name,
                        &[crate::status::FieldError::invalid(
                            "spec.replicas",
                            replicas.to_string(),
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut object = current.clone();
                object["spec"]["replicas"] = json!(replicas);
                next = object;
            }
            Ok(next)
        },
    )?;
    Ok((patched, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_merge_by_name_and_tolerations_are_replaced() {
        let pod = json!({"spec": {
            "containers": [{"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]}, {"name": "b", "image": "y"}],
            "tolerations": [{"key": "t1"}]
        }});
        let patch = json!({"spec": {
            "containers": [{"name": "a", "image": "x2", "env": [{"name": "L", "value": "2"}]}, {"name": "b", "$patch": "delete"}],
            "tolerations": [{"key": "t2"}]
        }});
        let out = strategic_merge(&pod, &patch);
        assert_eq!(out.pointer("/spec/containers/0/image"), Some(&json!("x2")));
        assert_eq!(
            out.pointer("/spec/containers/0/env")
                .and_then(Value::as_array)
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(
            out.pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(
            out.pointer("/spec/tolerations"),
            Some(&json!([{"key": "t2"}]))
        );
    }
}
