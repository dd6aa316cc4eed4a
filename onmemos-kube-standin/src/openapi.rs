//! The OpenAPI v3 documents kubectl reads before `apply`: `/openapi/v3` lists a document per
//! group version, and each names its paths with their operations, the
//! `x-kubernetes-group-version-kind` and `x-kubernetes-action` extensions, and the query
//! parameters — among them `fieldValidation`, whose presence on a kind's PATCH tells kubectl
//! that the server validates fields itself (kubectl then sends `fieldValidation=Strict` and
//! skips its own schema validation). Schemas of the objects are not served.

use serde_json::{Map, Value, json};

use crate::resources::{RESOURCES, ResourceType};

/// `api/v1` or `apis/GROUP/VERSION`: the key of a group version in `/openapi/v3`.
fn gv_key(r: &ResourceType) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

/// A stable hash of a document's key: the documents never change in one process.
fn hash(key: &str) -> String {
    format!("{:016X}", crc(key))
}

fn crc(s: &str) -> u64 {
    // FNV-1a: enough to tell the documents apart in kubectl's cache.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `GET /openapi/v3`: where the document of each group version is.
pub(crate) fn index() -> Value {
    let mut paths = Map::new();
    for r in RESOURCES {
        let key = gv_key(r);
        let url = format!("/openapi/v3/{key}?hash={}", hash(&key));
        paths.insert(key, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

fn param(name: &str) -> Value {
    json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } })
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "uniqueItems": true } })
}

fn operation(r: &ResourceType, action: &str, query: &[&str]) -> Value {
    let mut parameters: Vec<Value> = query.iter().map(|q| param(q)).collect();
    parameters.push(param("pretty"));
    json!({
        "operationId": format!("{action}{}", r.kind),
        "parameters": parameters,
        "responses": { "200": { "description": "OK" }, "401": { "description": "Unauthorized" } },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": { "group": r.group, "version": r.version, "kind": r.kind },
    })
}

/// `GET /openapi/v3/<key>`: the paths of one group version, or `None` if it is not served.
pub(crate) fn document(key: &str) -> Option<Value> {
    let resources: Vec<&ResourceType> = RESOURCES.iter().filter(|r| gv_key(r) == key).collect();
    if resources.is_empty() {
        return None;
    }
    let write = ["dryRun", "fieldManager", "fieldValidation"];
    let mut paths = Map::new();
    for r in resources {
        let base = if r.namespaced {
            format!("/{key}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("/{key}/{}", r.plural)
        };
        let scope: Vec<Value> = if r.namespaced {
            vec![path_param("namespace")]
        } else {
            Vec::new()
        };
        let mut collection = json!({
            "get": operation(r, "list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
            "parameters": scope,
        });
        let mut item = json!({
            "get": operation(r, "get", &[]),
            "parameters": scope.iter().cloned().chain([path_param("name")]).collect::<Vec<_>>(),
        });
        if !r.read_only {
            collection["post"] = operation(r, "post", &write);
            collection["delete"] = operation(
                r,
                "deletecollection",
                &["dryRun", "gracePeriodSeconds", "labelSelector"],
            );
            item["put"] = operation(r, "put", &write);
            item["patch"] = operation(
                r,
                "patch",
                &["dryRun", "fieldManager", "fieldValidation", "force"],
            );
            item["delete"] = operation(
                r,
                "delete",
                &["dryRun", "gracePeriodSeconds", "propagationPolicy"],
            );
        }
        paths.insert(base.clone(), collection);
        paths.insert(format!("{base}/{{name}}"), item);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": crate::discovery::version()["gitVersion"].clone() },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_has_a_document_whose_patches_take_field_validation() {
        let index = index();
        let keys: Vec<String> = index["paths"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        assert!(
            keys.contains(&"api/v1".to_owned())
                && keys.contains(&"apis/rbac.authorization.k8s.io/v1".to_owned()),
            "{keys:?}"
        );
        let core = document("api/v1").unwrap_or_default();
        let patch = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            patch["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|q| q["name"] == "fieldValidation"))
        );
        assert!(document("apis/nope/v1").is_none());
        let metrics = document("apis/metrics.k8s.io/v1beta1").unwrap_or_default();
        assert!(metrics["paths"]["/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}"]["patch"].is_null(), "metrics are read-only");
    }
}
