//! The taint manager: pods on a node with a `NoExecute` taint they do not tolerate are
//! evicted at once; those tolerating it for `tolerationSeconds` are evicted when that time
//! (counted from the taint's `timeAdded`) runs out. Each gets `DisruptionTarget`
//! (`DeletionByTaintManager`) first.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::StandInState;
use crate::resources;
use crate::store::{Filter, Preconditions, str_at};

/// Evicts what the `NoExecute` taints say must go; schedules a look again for tolerations
/// that run out later.
pub(crate) fn reconcile(state: &Arc<StandInState>) {
    let (Some(nodes), Some(pods)) = (
        resources::find("", "v1", "nodes"),
        resources::find("", "v1", "pods"),
    ) else {
        return;
    };
    let (all_nodes, _) = state.store.list(nodes, &Filter::default());
    let tainted: Vec<&Value> = all_nodes
        .iter()
        .filter(|n| {
            n.pointer("/spec/taints")
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|t| str_at(t, "/effect") == "NoExecute"))
        })
        .collect();
    if tainted.is_empty() {
        return;
    }
    let (all_pods, _) = state.store.list(pods, &Filter::default());
    let now = chrono::Utc::now();
    for node in tainted {
        let name = str_at(node, "/metadata/name");
        let taints: Vec<&Value> = node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter(|t| str_at(t, "/effect") == "NoExecute")
                    .collect()
            })
            .unwrap_or_default();
        for pod in all_pods.iter().filter(|p| {
            str_at(p, "/spec/nodeName") == name
                && p.pointer("/metadata/deletionTimestamp").is_none()
        }) {
            let tolerations: Vec<&Value> = pod
                .pointer("/spec/tolerations")
                .and_then(Value::as_array)
                .map(|t| t.iter().collect())
                .unwrap_or_default();
            // The soonest moment one of the taints says the pod must go.
            let mut due: Option<chrono::DateTime<chrono::Utc>> = None;
            for taint in &taints {
                let added = str_at(taint, "/timeAdded")
                    .parse::<chrono::DateTime<chrono::Utc>>()
                    .unwrap_or(now);
                let matching: Vec<&&Value> = tolerations
                    .iter()
                    .filter(|t| crate::scheduler::tolerates(t, taint))
                    .collect();
                let at = if matching.is_empty() {
                    Some(added)
                } else {
                    // Tolerated forever unless every matching toleration has a limit.
                    matching
                        .iter()
                        .map(|t| t.get("tolerationSeconds").and_then(Value::as_i64))
                        .collect::<Option<Vec<i64>>>()
                        .and_then(|secs| secs.into_iter().max())
                        .map(|s| added + chrono::Duration::seconds(s))
                };
                if let Some(at) = at {
                    due = Some(due.map_or(at, |d| d.min(at)));
                }
            }
            let Some(due) = due else { continue };
            let ns = str_at(pod, "/metadata/namespace").to_owned();
            let pod_name = str_at(pod, "/metadata/name").to_owned();
            if due <= now {
                crate::conditions::disruption_target(
                    state,
                    &ns,
                    &pod_name,
                    "DeletionByTaintManager",
                    "Taint manager: deleting due to NoExecute taint",
                );
                let grace = crate::kubelet::deletion_grace(state, &ns, &pod_name, &json!({}));
                let _ = state.store.delete(
                    pods,
                    &ns,
                    &pod_name,
                    &Preconditions::default(),
                    grace,
                    false,
                );
            } else {
                let wait = (due - now).to_std().unwrap_or_default() + Duration::from_millis(10);
                let state = state.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    reconcile(&state);
                });
            }
        }
    }
}
