//! The workload controllers: deployments roll out through replica sets, replica sets keep
//! their pod count, stateful sets keep pods with ordinal names, daemon sets keep one pod per
//! eligible node; and pod disruption budgets keep their status current.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::StandInState;
use crate::resources::{self, ResourceType};
use crate::selectors::{LabelSelector, labels_of};
use crate::store::{Filter, Preconditions, name_of, str_at};

fn find(group: &str, plural: &str) -> Option<&'static ResourceType> {
    resources::find(group, "v1", plural)
}

/// The selector of a `metav1.LabelSelector` object; `None` when it does not parse.
pub(crate) fn selector(object: &Value) -> Option<LabelSelector> {
    let mut terms = Vec::new();
    if let Some(map) = object.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in map {
            terms.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in object
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(e, "/key");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        terms.push(match str_at(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    LabelSelector::parse(&terms.join(",")).ok()
}

/// Whether a pod is Ready.
pub(crate) fn ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")
        })
}

fn live(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn owned_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| str_at(r, "/uid") == uid))
}

fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A pod from `template`, owned by `owner`.
fn pod_from(template: &Value, owner: &Value, extra_labels: &BTreeMap<String, String>) -> Value {
    let mut pod = json!({ "metadata": template.get("metadata").cloned().unwrap_or(json!({})), "spec": template.get("spec").cloned().unwrap_or(json!({})) });
    for (k, v) in extra_labels {
        pod["metadata"]["labels"][k] = json!(v);
    }
    pod["metadata"]["ownerReferences"] = json!([owner_ref(owner)]);
    pod
}

/// A stable hash of a pod template (the `pod-template-hash` label).
fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut hasher);
    let mut n = hasher.finish();
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn write_status(
    state: &StandInState,
    resource: &'static ResourceType,
    object: &Value,
    status: Value,
) {
    let ns = str_at(object, "/metadata/namespace");
    let name = name_of(object);
    let _ = state
        .store
        .modify(resource, ns, name, true, false, |current| {
            let mut next = current.clone();
            let mut merged = current.get("status").cloned().unwrap_or(json!({}));
            if let (Some(m), Some(add)) = (merged.as_object_mut(), status.as_object()) {
                for (k, v) in add {
                    m.insert(k.clone(), v.clone());
                }
            }
            next["status"] = merged;
            Ok(next)
        });
}

/// Runs every workload controller once.
pub(crate) fn reconcile(state: &StandInState) {
    deployments(state);
    replica_sets(state);
    stateful_sets(state);
    daemon_sets(state);
    disruption_budgets(state);
}

fn all(state: &StandInState, resource: Option<&'static ResourceType>) -> Vec<Value> {
    resource
        .map(|r| state.store.list(r, &Filter::default()).0)
        .unwrap_or_default()
}

fn deployments(state: &StandInState) {
    let (Some(deploys), Some(sets)) = (find("apps", "deployments"), find("apps", "replicasets"))
    else {
        return;
    };
    let all_sets = all(state, Some(sets));
    for d in all(state, Some(deploys)) {
        if d.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = str_at(&d, "/metadata/namespace");
        let uid = str_at(&d, "/metadata/uid");
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let name = format!("{}-{hash}", name_of(&d));
        let replicas = d
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let owned: Vec<&Value> = all_sets
            .iter()
            .filter(|rs| str_at(rs, "/metadata/namespace") == ns && owned_by(rs, uid))
            .collect();
        if !owned.iter().any(|rs| name_of(rs) == name) {
            let mut rs_template = template.clone();
            rs_template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut labels = template
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            labels["pod-template-hash"] = json!(hash);
            let rs = json!({
                "metadata": { "name": name, "labels": labels, "ownerReferences": [owner_ref(&d)],
                    "annotations": { "deployment.kubernetes.io/revision": (owned.len() + 1).to_string() } },
                "spec": { "replicas": replicas, "selector": selector, "template": rs_template },
            });
            let _ = state.store.create(sets, ns, rs, false);
        }
        // The current set gets every replica; older ones none (a rollout at once).
        let mut updated = 0;
        let mut ready_total = 0;
        let mut total = 0;
        for rs in &owned {
            let want = if name_of(rs) == name { replicas } else { 0 };
            if rs.pointer("/spec/replicas").and_then(Value::as_i64) != Some(want) {
                let _ =
                    crate::scale::set_replicas(&state.store, sets, ns, name_of(rs), want, false);
            }
            let have = rs
                .pointer("/status/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let ready = rs
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            total += have;
            ready_total += ready;
            if name_of(rs) == name {
                updated = have;
            }
        }
        let available = ready_total >= replicas;
        write_status(
            state,
            deploys,
            &d,
            json!({
                "observedGeneration": d.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                "replicas": total,
                "updatedReplicas": updated,
                "readyReplicas": ready_total,
                "availableReplicas": ready_total,
                "unavailableReplicas": (replicas - ready_total).max(0),
                "conditions": [
                    { "type": "Available", "status": if available { "True" } else { "False" },
                      "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" } },
                    { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" }
                ],
            }),
        );
    }
}

fn replica_sets(state: &StandInState) {
    let (Some(sets), Some(pods_type)) = (find("apps", "replicasets"), find("", "pods")) else {
        return;
    };
    let pods = all(state, Some(pods_type));
    for rs in all(state, Some(sets)) {
        if rs.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = str_at(&rs, "/metadata/namespace");
        let uid = str_at(&rs, "/metadata/uid");
        let replicas = rs
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let mut mine: Vec<&Value> = pods
            .iter()
            .filter(|p| str_at(p, "/metadata/namespace") == ns && owned_by(p, uid) && live(p))
            .collect();
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        for _ in mine.len()..replicas {
            let mut pod = pod_from(&template, &rs, &BTreeMap::new());
            pod["metadata"]["generateName"] = json!(format!("{}-", name_of(&rs)));
            if let Some(m) = pod["metadata"].as_object_mut() {
                m.remove("name");
            }
            let _ = state.store.create(pods_type, ns, pod, false);
        }
        if mine.len() > replicas {
            // Not ready first, then the newest.
            mine.sort_by_key(|p| {
                (
                    ready(p),
                    std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_owned()),
                )
            });
            for p in &mine[..mine.len() - replicas] {
                let grace = crate::kubelet::deletion_grace(state, ns, name_of(p), &json!({}));
                let _ = state.store.delete(
                    pods_type,
                    ns,
                    name_of(p),
                    &Preconditions::default(),
                    grace,
                    false,
                );
            }
        }
        let count = mine.len().min(replicas) as i64;
        let ready_count = mine.iter().filter(|p| ready(p)).count().min(replicas) as i64;
        write_status(
            state,
            sets,
            &rs,
            json!({
                "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                "replicas": count,
                "fullyLabeledReplicas": count,
                "readyReplicas": ready_count,
                "availableReplicas": ready_count,
            }),
        );
    }
}

fn stateful_sets(state: &StandInState) {
    let (Some(sets), Some(pods_type)) = (find("apps", "statefulsets"), find("", "pods")) else {
        return;
    };
    let pods = all(state, Some(pods_type));
    for ss in all(state, Some(sets)) {
        if ss.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = str_at(&ss, "/metadata/namespace");
        let uid = str_at(&ss, "/metadata/uid");
        let base = name_of(&ss);
        let replicas = ss
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let parallel = str_at(&ss, "/spec/podManagementPolicy") == "Parallel";
        let mine: BTreeMap<usize, &Value> = pods
            .iter()
            .filter(|p| str_at(p, "/metadata/namespace") == ns && owned_by(p, uid))
            .filter_map(|p| {
                name_of(p)
                    .strip_prefix(&format!("{base}-"))?
                    .parse::<usize>()
                    .ok()
                    .map(|i| (i, p))
            })
            .collect();
        let template = ss.pointer("/spec/template").cloned().unwrap_or(json!({}));
        for ordinal in 0..replicas {
            if mine.contains_key(&ordinal) {
                continue;
            }
            // OrderedReady: the next one only once every one before runs and is ready.
            if !parallel && (0..ordinal).any(|i| !mine.get(&i).is_some_and(|p| ready(p))) {
                break;
            }
            let name = format!("{base}-{ordinal}");
            let extra = BTreeMap::from([
                (
                    "statefulset.kubernetes.io/pod-name".to_owned(),
                    name.clone(),
                ),
                (
                    "apps.kubernetes.io/pod-index".to_owned(),
                    ordinal.to_string(),
                ),
            ]);
            let mut pod = pod_from(&template, &ss, &extra);
            pod["metadata"]["name"] = json!(name);
            pod["spec"]["hostname"] = json!(name);
            let _ = state.store.create(pods_type, ns, pod, false);
            if !parallel {
                break;
            }
        }
        // Scale down from the highest ordinal.
        for (ordinal, p) in mine.iter().rev() {
            if *ordinal >= replicas && p.pointer("/metadata/deletionTimestamp").is_none() {
                let grace = crate::kubelet::deletion_grace(state, ns, name_of(p), &json!({}));
                let _ = state.store.delete(
                    pods_type,
                    ns,
                    name_of(p),
                    &Preconditions::default(),
                    grace,
                    false,
                );
                if !parallel {
                    break;
                }
            }
        }
        let present = mine
            .iter()
            .filter(|(i, p)| **i < replicas && live(p))
            .count() as i64;
        let ready_count = mine
            .iter()
            .filter(|(i, p)| **i < replicas && ready(p))
            .count() as i64;
        write_status(
            state,
            sets,
            &ss,
            json!({
                "observedGeneration": ss.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                "replicas": present,
                "readyReplicas": ready_count,
                "currentReplicas": present,
                "updatedReplicas": present,
                "availableReplicas": ready_count,
            }),
        );
    }
}

fn daemon_sets(state: &StandInState) {
    let (Some(sets), Some(pods_type), Some(nodes_type)) = (
        find("apps", "daemonsets"),
        find("", "pods"),
        find("", "nodes"),
    ) else {
        return;
    };
    let pods = all(state, Some(pods_type));
    let nodes = all(state, Some(nodes_type));
    for ds in all(state, Some(sets)) {
        if ds.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = str_at(&ds, "/metadata/namespace");
        let uid = str_at(&ds, "/metadata/uid");
        let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let mut probe = json!({ "spec": template.get("spec").cloned().unwrap_or(json!({})) });
        // Daemon pods tolerate what the daemon set controller adds.
        let mut tolerations = probe
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/unschedulable",
            "node.kubernetes.io/disk-pressure",
            "node.kubernetes.io/memory-pressure",
        ] {
            tolerations.push(json!({ "key": key, "operator": "Exists" }));
        }
        probe["spec"]["tolerations"] = Value::Array(tolerations.clone());
        let eligible: Vec<&str> = nodes
            .iter()
            .filter(|n| crate::scheduler::daemon_fits(&probe, n))
            .map(name_of)
            .collect();
        let mine: Vec<&Value> = pods
            .iter()
            .filter(|p| str_at(p, "/metadata/namespace") == ns && owned_by(p, uid) && live(p))
            .collect();
        let placed: BTreeSet<&str> = mine.iter().map(|p| str_at(p, "/spec/nodeName")).collect();
        for node in &eligible {
            if placed.contains(node) {
                continue;
            }
            let mut pod = pod_from(&template, &ds, &BTreeMap::new());
            pod["metadata"]["generateName"] = json!(format!("{}-", name_of(&ds)));
            if let Some(m) = pod["metadata"].as_object_mut() {
                m.remove("name");
            }
            pod["spec"]["tolerations"] = Value::Array(tolerations.clone());
            pod["spec"]["nodeName"] = json!(node);
            let _ = state.store.create(pods_type, ns, pod, false);
        }
        for p in mine
            .iter()
            .filter(|p| !eligible.contains(&str_at(p, "/spec/nodeName")))
        {
            let _ = state.store.delete(
                pods_type,
                ns,
                name_of(p),
                &Preconditions::default(),
                None,
                false,
            );
        }
        let current = mine
            .iter()
            .filter(|p| eligible.contains(&str_at(p, "/spec/nodeName")))
            .count();
        let ready_count = mine.iter().filter(|p| ready(p)).count();
        write_status(
            state,
            sets,
            &ds,
            json!({
                "observedGeneration": ds.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                "desiredNumberScheduled": eligible.len(),
                "currentNumberScheduled": current,
                "updatedNumberScheduled": current,
                "numberReady": ready_count,
                "numberAvailable": ready_count,
                "numberMisscheduled": 0,
            }),
        );
    }
}

/// An `IntOrString` of a budget, against `total` pods (percentages round up).
fn budget_value(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s
            .strip_suffix('%')?
            .parse::<i64>()
            .ok()
            .map(|p| (p * total + 99) / 100),
        _ => None,
    }
}

fn disruption_budgets(state: &StandInState) {
    let (Some(pdbs), Some(pods_type)) = (
        resources::find("policy", "v1", "poddisruptionbudgets"),
        find("", "pods"),
    ) else {
        return;
    };
    let pods = all(state, Some(pods_type));
    for pdb in all(state, Some(pdbs)) {
        let ns = str_at(&pdb, "/metadata/namespace");
        let Some(sel) = pdb.pointer("/spec/selector").and_then(selector) else {
            continue;
        };
        let empty = pdb
            .pointer("/spec/selector")
            .is_none_or(|s| s.as_object().is_none_or(Map::is_empty));
        let disrupted: BTreeSet<String> = pdb
            .pointer("/status/disruptedPods")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let matching: Vec<&Value> = if empty {
            Vec::new()
        } else {
            pods.iter()
                .filter(|p| {
                    str_at(p, "/metadata/namespace") == ns && sel.matches(&labels_of(p)) && live(p)
                })
                .collect()
        };
        let expected = matching.len() as i64;
        let healthy = matching
            .iter()
            .filter(|p| ready(p) && !disrupted.contains(name_of(p)))
            .count() as i64;
        let desired = if let Some(min) = pdb.pointer("/spec/minAvailable") {
            budget_value(min, expected).unwrap_or(0)
        } else if let Some(max) = pdb.pointer("/spec/maxUnavailable") {
            (expected - budget_value(max, expected).unwrap_or(0)).max(0)
        } else {
            0
        };
        let allowed = (healthy - desired).max(0);
        let condition_status = if allowed > 0 { "True" } else { "False" };
        // The transition time moves only when the condition does.
        let since = pdb
            .pointer("/status/conditions/0")
            .filter(|c| str_at(c, "/status") == condition_status)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(crate::store::timestamp()));
        // Disrupted pods that are gone are forgotten.
        let still: Map<String, Value> = pdb
            .pointer("/status/disruptedPods")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| matching.iter().any(|p| name_of(p) == k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        write_status(
            state,
            pdbs,
            &pdb,
            json!({
                "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "expectedPods": expected,
                "disruptionsAllowed": allowed,
                "disruptedPods": still,
                "conditions": [{
                    "type": "DisruptionAllowed",
                    "status": condition_status,
                    "reason": if allowed > 0 { "SufficientPods" } else { "InsufficientPods" },
                    "message": "",
                    "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                    "lastTransitionTime": since,
                }],
            }),
        );
    }
}
