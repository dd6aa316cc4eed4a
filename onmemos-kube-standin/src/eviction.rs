//! `POST …/pods/{name}/eviction`, as `pkg/registry/core/pod/storage/eviction.go` decides:
//! terminal, pending and deleting pods are deleted without a budget check; more than one
//! matching budget is a 500; an unobserved budget is a 429 to retry in 10 s; a budget with
//! no disruption left is a 429 naming it; otherwise the budget is decremented (the pod noted
//! in `disruptedPods`) and the pod deleted.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::StandInState;
use crate::resources;
use crate::selectors::labels_of;
use crate::status::ApiError;
use crate::store::{Filter, Preconditions, str_at};

fn success() -> Response {
    (
        StatusCode::CREATED,
        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})),
    )
        .into_response()
}

/// Handles one eviction.
pub(crate) fn evict(
    state: &StandInState,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    dry_run_query: bool,
) -> Result<Response, ApiError> {
    let media = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let eviction = if media.starts_with("application/vnd.kubernetes.protobuf") {
        crate::protobuf::eviction(body).map_err(ApiError::bad_request)?
    } else {
        crate::api::parse_body(headers, body)?
    };
    if str_at(&eviction, "/metadata/name") != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options = eviction.get("deleteOptions").cloned().unwrap_or(json!({}));
    let dry_run = dry_run_query
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    match evict_pod(state, namespace, name, &options, dry_run)? {
        Outcome::Evicted => Ok(success()),
        Outcome::TwoBudgets => {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.", "code": 500});
            Ok((StatusCode::INTERNAL_SERVER_ERROR, axum::Json(status)).into_response())
        }
    }
}

/// What an eviction came to, when it is not an error.
pub(crate) enum Outcome {
    /// The pod is being deleted.
    Evicted,
    /// More than one budget matches: the apiserver answers 500.
    TwoBudgets,
}

/// Evicts pod `name` with `options` (`DeleteOptions`).
pub(crate) fn evict_pod(
    state: &StandInState,
    namespace: &str,
    name: &str,
    options: &Value,
    dry_run: bool,
) -> Result<Outcome, ApiError> {
    let (Some(pods), Some(pdbs)) = (
        resources::find("", "v1", "pods"),
        resources::find("policy", "v1", "poddisruptionbudgets"),
    ) else {
        return Err(ApiError::internal("the stand-in has no pods or budgets"));
    };
    let pod = state.store.get(pods, namespace, name)?;
    let requested = Preconditions {
        uid: options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource_version: options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let delete = |preconditions: &Preconditions| -> Result<(), ApiError> {
        if !dry_run {
            // As the apiserver does since 1.26: the pod says why it goes.
            crate::conditions::disruption_target(
                state,
                namespace,
                name,
                "EvictionByEvictionAPI",
                "Eviction API: evicting",
            );
        }
        let grace = crate::kubelet::deletion_grace(state, namespace, name, options);
        state
            .store
            .delete(pods, namespace, name, preconditions, grace, dry_run)
            .map(|_| ())
    };
    let phase = str_at(&pod, "/status/phase");
    if matches!(phase, "Succeeded" | "Failed" | "Pending")
        || pod.pointer("/metadata/deletionTimestamp").is_some()
    {
        delete(&requested)?;
        return Ok(Outcome::Evicted);
    }
    let filter = Filter {
        namespace: Some(namespace.to_owned()),
        ..Filter::default()
    };
    let (budgets, _) = state.store.list(pdbs, &filter);
    let labels = labels_of(&pod);
    let matching: Vec<Value> = budgets
        .into_iter()
        .filter(|b| {
            let selector = b.pointer("/spec/selector");
            let empty =
                selector.is_none_or(|s| s.as_object().is_none_or(serde_json::Map::is_empty));
            !empty
                && selector
                    .and_then(crate::workloads::selector)
                    .is_some_and(|s| s.matches(&labels))
        })
        .collect();
    if matching.len() > 1 {
        return Ok(Outcome::TwoBudgets);
    }
    let Some(pdb) = matching.into_iter().next() else {
        delete(&requested)?;
        return Ok(Outcome::Evicted);
    };
    let pdb_name = str_at(&pdb, "/metadata/name").to_owned();
    let int = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let (current, desired) = (int("/status/currentHealthy"), int("/status/desiredHealthy"));
    if !crate::workloads::ready(&pod) && current >= desired && desired > 0 {
        // An unready pod does not count as healthy: no decrement, but the pod must not have
        // become ready meanwhile.
        let pinned = Preconditions {
            resource_version: pod
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ..requested
        };
        delete(&pinned)?;
        return Ok(Outcome::Evicted);
    }
    let cause = |message: String| vec![json!({ "reason": "DisruptionBudget", "message": message })];
    if int("/status/observedGeneration") < int("/metadata/generation") {
        return Err(ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            10,
            cause(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )),
        ));
    }
    let allowed = int("/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(ApiError::forbidden_named(
            "poddisruptionbudget.policy",
            &pdb_name,
            "pdb disruptions allowed is negative",
        ));
    }
    if allowed == 0 {
        return Err(ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            0,
            cause(format!(
                "The disruption budget {pdb_name} needs {desired} healthy pods and has {current} currently"
            )),
        ));
    }
    if !dry_run {
        state
            .store
            .modify(pdbs, namespace, &pdb_name, true, false, |b| {
                let mut next = b.clone();
                next["status"]["disruptionsAllowed"] = json!(allowed - 1);
                next["status"]["disruptedPods"][name] = json!(crate::store::timestamp());
                Ok(next)
            })?;
    }
    delete(&requested)?;
    Ok(Outcome::Evicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster with no controllers running: the budget's status is what the test writes.
    fn quiet_state() -> StandInState {
        StandInState {
            store: crate::store::Store::new(),
            watch_epoch: tokio::sync::watch::Sender::new(0),
            kubelet: crate::kubelet::Kubelet::new().unwrap_or_else(|e| panic!("{e}")),
            faults: crate::faults::Faults::default(),
            audit: crate::audit::Audit::default(),
        }
    }

    fn running_pod(state: &StandInState) {
        let pods = resources::find("", "v1", "pods").unwrap_or_else(|| panic!("pods"));
        let pod = json!({"metadata": {"name": "web-0", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}});
        state
            .store
            .create(pods, "default", pod, false)
            .unwrap_or_else(|e| panic!("{e}"));
        state
            .store
            .modify(pods, "default", "web-0", true, false, |p| {
                let mut next = p.clone();
                next["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
                Ok(next)
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn budget(state: &StandInState, status: Value) {
        let pdbs = resources::find("policy", "v1", "poddisruptionbudgets")
            .unwrap_or_else(|| panic!("pdbs"));
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        state
            .store
            .create(pdbs, "default", pdb, false)
            .unwrap_or_else(|e| panic!("{e}"));
        state
            .store
            .modify(pdbs, "default", "web", true, false, |b| {
                let mut next = b.clone();
                next["status"] = status.clone();
                Ok(next)
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn an_unobserved_budget_asks_to_retry_in_ten_seconds() {
        let state = quiet_state();
        running_pod(&state);
        budget(
            &state,
            json!({"observedGeneration": 0, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1}),
        );
        let refused = evict_pod(&state, "default", "web-0", &json!({}), false)
            .err()
            .unwrap_or_else(|| panic!("evicted"));
        let status = refused.to_status();
        assert_eq!((refused.code(), refused.reason()), (429, "TooManyRequests"));
        assert_eq!(status["details"]["retryAfterSeconds"], 10);
        assert_eq!(status["details"]["causes"][0]["reason"], "DisruptionBudget");
        assert_eq!(
            status["details"]["causes"][0]["message"],
            "The disruption budget web is still being processed by the server."
        );
    }

    #[tokio::test]
    async fn an_allowed_disruption_is_taken_from_the_budget() {
        let state = quiet_state();
        running_pod(&state);
        budget(
            &state,
            json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1}),
        );
        assert!(matches!(
            evict_pod(&state, "default", "web-0", &json!({}), false),
            Ok(Outcome::Evicted)
        ));
        let pdbs = resources::find("policy", "v1", "poddisruptionbudgets")
            .unwrap_or_else(|| panic!("pdbs"));
        let after = state
            .store
            .get(pdbs, "default", "web")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after["status"]["disruptionsAllowed"], 0);
        assert!(after["status"]["disruptedPods"]["web-0"].is_string());
        let pods = resources::find("", "v1", "pods").unwrap_or_else(|| panic!("pods"));
        assert_eq!(
            state
                .store
                .get(pods, "default", "web-0")
                .err()
                .map(|e| e.code()),
            Some(404)
        );
    }
}
