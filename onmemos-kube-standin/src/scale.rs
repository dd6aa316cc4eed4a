//! The `scale` subresource of deployments, replica sets and stateful sets (`autoscaling/v1
//! Scale`).

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::status::{ApiError, FieldError};
use crate::store::Store;

/// The `Scale` of a scalable object.
pub fn scale_of(object: &Value) -> Value {
    let meta = &object["metadata"];
    let selector = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0)) },
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        }
    })
}

/// Sets `spec.replicas` (at least 0).
pub fn set_replicas(
    store: &Store,
    resource: &'static ResourceType,
    namespace: &str,
    name: &str,
    replicas: i64,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if replicas < 0 {
        return Err(ApiError::invalid(
            resource,
            name,
            &[FieldError::invalid(
                "spec.replicas",
                replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    store.modify(resource, namespace, name, false, dry_run, |current| {
        let mut next = current.clone();
        next["spec"]["replicas"] = json!(replicas);
        Ok(next)
    })
}
