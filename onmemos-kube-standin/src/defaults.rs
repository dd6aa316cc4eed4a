//! What the apiserver's create strategies and defaulting do to a new object, for the kinds
//! the stand-in serves: a status reset, and the defaults clients rely on reading back.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Prepares a new object of `resource` for storage.
pub fn on_create(resource: &ResourceType, object: &mut Value) {
    match (resource.group, resource.plural) {
        ("", "pods") => {
            object["status"] = json!({ "phase": "Pending", "qosClass": qos_class(object) });
            let spec = &mut object["spec"];
            if spec.get("restartPolicy").is_none() {
                spec["restartPolicy"] = json!("Always");
            }
            if spec.get("terminationGracePeriodSeconds").is_none() {
                spec["terminationGracePeriodSeconds"] = json!(30);
            }
            if spec.get("schedulerName").is_none() {
                spec["schedulerName"] = json!("default-scheduler");
            }
            if spec.get("serviceAccountName").is_none() {
                spec["serviceAccountName"] = json!("default");
            }
        }
        ("", "namespaces") => {
            object["spec"] = json!({ "finalizers": ["kubernetes"] });
            object["status"] = json!({ "phase": "Active" });
            let name = object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
        }
        ("apps", "deployments" | "replicasets" | "statefulsets") => {
            if object.pointer("/spec/replicas").is_none() {
                object["spec"]["replicas"] = json!(1);
            }
            object["status"] = json!({});
        }
        (_, _) if resource.has_subresource("status") && object.get("status").is_none() => {
            object["status"] = json!({});
        }
        _ => {}
    }
}

/// `Guaranteed` when every container's requests equal its limits for CPU and memory,
/// `BestEffort` when none sets any, else `Burstable`.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let set = |c: &Value, what: &str| {
        c.pointer(&format!("/resources/{what}"))
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    };
    if containers
        .iter()
        .all(|c| !set(c, "requests") && !set(c, "limits"))
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = c.pointer(&format!("/resources/limits/{r}"));
            let request = c.pointer(&format!("/resources/requests/{r}")).or(limit);
            limit.is_some() && request == limit
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// What the apiserver's update strategies set on every write: a `NoExecute` taint without a
/// `timeAdded` gets the time it was added.
pub fn on_write(resource: &ResourceType, object: &mut Value) {
    if resource.group.is_empty()
        && resource.plural == "nodes"
        && let Some(taints) = object
            .pointer_mut("/spec/taints")
            .and_then(Value::as_array_mut)
    {
        for taint in taints {
            if taint.get("effect").and_then(Value::as_str) == Some("NoExecute")
                && taint.get("timeAdded").is_none_or(Value::is_null)
            {
                taint["timeAdded"] = json!(crate::store::timestamp());
            }
        }
    }
}
