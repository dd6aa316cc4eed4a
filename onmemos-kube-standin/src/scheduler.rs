//! The scheduler: binds each pending pod to a node that is ready and schedulable, whose
//! labels match the pod's `nodeSelector` and required node affinity, whose taints the pod
//! tolerates, and whose allocatable CPU, memory and pod count hold the pod's requests. A pod
//! no node can take gets `PodScheduled=False/Unschedulable` and a `FailedScheduling` event.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::StandInState;
use crate::resources;
use crate::store::{Filter, str_at, timestamp};

/// What a pod asks for: CPU millis, memory bytes.
pub(crate) fn requests(pod: &Value) -> (u64, u64) {
    let mut cpu = 0;
    let mut memory = 0;
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let get = |what: &str| {
            c.pointer(&format!("/resources/requests/{what}"))
                .or_else(|| c.pointer(&format!("/resources/limits/{what}")))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        cpu += get("cpu")
            .and_then(|q| crate::quantity::millis(&q))
            .unwrap_or(0);
        memory += get("memory")
            .and_then(|q| crate::quantity::bytes(&q))
            .unwrap_or(0);
    }
    (cpu, memory)
}

fn labels(object: &Value) -> BTreeMap<String, String> {
    crate::selectors::labels_of(object)
}

/// Whether `toleration` tolerates `taint`.
pub(crate) fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = str_at(toleration, "/effect");
    if !effect.is_empty() && effect != str_at(taint, "/effect") {
        return false;
    }
    let key = str_at(toleration, "/key");
    match toleration
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("Equal")
    {
        "Exists" => key.is_empty() || key == str_at(taint, "/key"),
        _ => {
            key == str_at(taint, "/key") && str_at(toleration, "/value") == str_at(taint, "/value")
        }
    }
}

/// The first taint of `node` with one of `effects` that `pod` does not tolerate.
pub(crate) fn untolerated<'a>(pod: &Value, node: &'a Value, effects: &[&str]) -> Option<&'a Value> {
    let tolerations: Vec<&Value> = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| effects.contains(&str_at(t, "/effect")))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

fn expression_holds(expr: &Value, labels: &BTreeMap<String, String>) -> bool {
    let key = str_at(expr, "/key");
    let values: Vec<&str> = expr
        .get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let actual = labels.get(key);
    let number = |s: &str| s.parse::<i64>().ok();
    match str_at(expr, "/operator") {
        "In" => actual.is_some_and(|a| values.contains(&a.as_str())),
        "NotIn" => actual.is_none_or(|a| !values.contains(&a.as_str())),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" => actual
            .and_then(|a| number(a))
            .zip(values.first().and_then(|v| number(v)))
            .is_some_and(|(a, v)| a > v),
        "Lt" => actual
            .and_then(|a| number(a))
            .zip(values.first().and_then(|v| number(v)))
            .is_some_and(|(a, v)| a < v),
        _ => false,
    }
}

/// Whether `node`'s labels satisfy the pod's `nodeSelector` and required node affinity.
fn selects(pod: &Value, node: &Value) -> bool {
    let labels = labels(node);
    let selector_ok = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        });
    let terms = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array);
    let affinity_ok = terms.is_none_or(|terms| {
        terms.iter().any(|term| {
            term.get("matchExpressions")
                .and_then(Value::as_array)
                .is_none_or(|exprs| exprs.iter().all(|e| expression_holds(e, &labels)))
        })
    });
    selector_ok && affinity_ok
}

fn ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")
        })
}

/// Why `node` cannot take `pod`, given what it already runs (`used`: CPU, memory, pods).
fn misfit(pod: &Value, node: &Value, used: (u64, u64, u64)) -> Option<String> {
    if !ready(node) {
        return Some("node(s) were not ready".into());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        let cordon = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
        let tolerated = pod
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .is_some_and(|ts| ts.iter().any(|t| tolerates(t, &cordon)));
        if !tolerated {
            return Some("node(s) were unschedulable".into());
        }
    }
    if !selects(pod, node) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    if let Some(taint) = untolerated(pod, node, &["NoSchedule", "NoExecute"]) {
        let value = str_at(taint, "/value");
        let shown = if value.is_empty() {
            str_at(taint, "/key").to_owned()
        } else {
            format!("{}: {value}", str_at(taint, "/key"))
        };
        return Some(format!("node(s) had untolerated taint {{{shown}}}"));
    }
    let allocatable = |what: &str, read: fn(&str) -> Option<u64>| {
        read(str_at(node, &format!("/status/allocatable/{what}"))).unwrap_or(0)
    };
    let (cpu, memory) = requests(pod);
    if used.2 + 1 > allocatable("pods", crate::quantity::bytes) {
        return Some("Too many pods".into());
    }
    if used.0 + cpu > allocatable("cpu", crate::quantity::millis) {
        return Some("Insufficient cpu".into());
    }
    if used.1 + memory > allocatable("memory", crate::quantity::bytes) {
        return Some("Insufficient memory".into());
    }
    None
}

/// Whether a daemon pod belongs on `node`: ready, matching, its taints tolerated (resources
/// are not counted, as the daemon set controller does not).
pub(crate) fn daemon_fits(pod: &Value, node: &Value) -> bool {
    ready(node)
        && selects(pod, node)
        && untolerated(pod, node, &["NoSchedule", "NoExecute"]).is_none()
}

/// Whether a pod still holds its node's resources.
pub(crate) fn holds_resources(pod: &Value) -> bool {
    !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// Schedules every pending pod it can.
pub(crate) fn schedule_pending(state: &StandInState) {
    let (Some(pods_type), Some(nodes_type)) = (
        resources::find("", "v1", "pods"),
        resources::find("", "v1", "nodes"),
    ) else {
        return;
    };
    let (nodes, _) = state.store.list(nodes_type, &Filter::default());
    let (pods, _) = state.store.list(pods_type, &Filter::default());
    let mut used: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for pod in &pods {
        let node = str_at(pod, "/spec/nodeName");
        if !node.is_empty() && holds_resources(pod) {
            let (cpu, memory) = requests(pod);
            let u = used.entry(node.to_owned()).or_default();
            *u = (u.0 + cpu, u.1 + memory, u.2 + 1);
        }
    }
    for pod in pods.iter().filter(|p| {
        str_at(p, "/spec/nodeName").is_empty()
            && p.pointer("/metadata/deletionTimestamp").is_none()
            && matches!(str_at(p, "/spec/schedulerName"), "" | "default-scheduler")
    }) {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<(&Value, u64)> = None;
        for node in &nodes {
            let name = str_at(node, "/metadata/name");
            let u = used.get(name).copied().unwrap_or_default();
            match misfit(pod, node, u) {
                Some(reason) => *reasons.entry(reason).or_default() += 1,
                None => {
                    // Least allocated CPU first, then by name: pods spread over nodes.
                    let score = u.0;
                    if best.is_none_or(|(_, s)| score < s) {
                        best = Some((node, score));
                    }
                }
            }
        }
        let ns = str_at(pod, "/metadata/namespace");
        let name = str_at(pod, "/metadata/name");
        match best {
            Some((node, _)) => {
                let node_name = str_at(node, "/metadata/name").to_owned();
                if bind(state, ns, name, &node_name).is_ok() {
                    let (cpu, memory) = requests(pod);
                    let u = used.entry(node_name).or_default();
                    *u = (u.0 + cpu, u.1 + memory, u.2 + 1);
                }
            }
            None => {
                let detail: Vec<String> = reasons
                    .iter()
                    .map(|(why, n)| format!("{n} {why}"))
                    .collect();
                let message = format!(
                    "0/{} nodes are available: {}. preemption: 0/{} nodes are available: {} Preemption is not helpful for scheduling.",
                    nodes.len(),
                    if detail.is_empty() {
                        "no nodes available to schedule pods".to_owned()
                    } else {
                        detail.join(", ")
                    },
                    nodes.len(),
                    nodes.len()
                );
                unschedulable(state, pod, &message);
            }
        }
    }
}

/// Binds pod `name` to `node` (as a `Binding` would).
pub(crate) fn bind(
    state: &StandInState,
    namespace: &str,
    name: &str,
    node: &str,
) -> Result<(), crate::ApiError> {
    let Some(pods) = resources::find("", "v1", "pods") else {
        return Ok(());
    };
    state
        .store
        .modify(pods, namespace, name, false, false, |current| {
            if !str_at(current, "/spec/nodeName").is_empty() {
                return Err(crate::ApiError::conflict(
                    pods,
                    name,
                    &format!(
                        "pod {name} is already assigned to node {:?}",
                        str_at(current, "/spec/nodeName")
                    ),
                ));
            }
            let mut next = current.clone();
            next["spec"]["nodeName"] = json!(node);
            Ok(next)
        })?;
    state.store.modify(pods, namespace, name, true, false, |current| {
        let mut next = current.clone();
        crate::conditions::set(
            &mut next["status"],
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": timestamp()}),
        );
        Ok(next)
    })?;
    Ok(())
}

/// Marks `pod` unschedulable for `message` (once per message) and records an event.
fn unschedulable(state: &StandInState, pod: &Value, message: &str) {
    let Some(pods) = resources::find("", "v1", "pods") else {
        return;
    };
    let already = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/message") == message)
        });
    if already {
        return;
    }
    let ns = str_at(pod, "/metadata/namespace");
    let name = str_at(pod, "/metadata/name");
    let _ = state.store.modify(pods, ns, name, true, false, |current| {
        let mut next = current.clone();
        crate::conditions::set(
            &mut next["status"],
            json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message, "lastProbeTime": null, "lastTransitionTime": timestamp()}),
        );
        Ok(next)
    });
    crate::events::record(
        state,
        pod,
        "Warning",
        "FailedScheduling",
        message,
        "default-scheduler",
    );
}
