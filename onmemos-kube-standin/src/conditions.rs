//! Pod and node conditions, set the one way every controller here sets them.

use serde_json::{Value, json};

use crate::StandInState;
use crate::resources;
use crate::store::timestamp;

/// Sets `condition` in `status.conditions`, replacing the one of the same type.
pub(crate) fn set(status: &mut Value, condition: Value) {
    let kind = condition["type"].clone();
    let mut kept: Vec<Value> = status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != kind)
        .collect();
    kept.push(condition);
    status["conditions"] = Value::Array(kept);
}

/// Marks pod `name` as about to go: `DisruptionTarget=True` with `reason` and `message`.
pub(crate) fn disruption_target(
    state: &StandInState,
    namespace: &str,
    name: &str,
    reason: &str,
    message: &str,
) {
    let Some(pods) = resources::find("", "v1", "pods") else {
        return;
    };
    let _ = state.store.modify(pods, namespace, name, true, false, |current| {
        let mut next = current.clone();
        set(
            &mut next["status"],
            json!({"type": "DisruptionTarget", "status": "True", "reason": reason, "message": message, "lastTransitionTime": timestamp()}),
        );
        Ok(next)
    });
}
