//! Events (`core/v1`), as the scheduler and the kubelet record them.

use serde_json::{Value, json};

use crate::StandInState;
use crate::resources;
use crate::store::timestamp;

/// Records an event about `object`.
pub(crate) fn record(
    state: &StandInState,
    object: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let Some(events) = resources::find("", "v1", "events") else {
        return;
    };
    let meta = &object["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("default").to_owned();
    let now = timestamp();
    let event = json!({
        "metadata": { "generateName": format!("{}.", meta["name"].as_str().unwrap_or("object")) },
        "involvedObject": {
            "apiVersion": object["apiVersion"],
            "kind": object["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": { "component": component },
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    if let Err(e) = state.store.create(events, &namespace, event, false) {
        tracing::debug!(error = %e, "could not record an event");
    }
}
