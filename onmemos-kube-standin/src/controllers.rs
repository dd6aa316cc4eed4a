//! The controllers that make the stand-in a cluster rather than a store: the namespace
//! controller (a deleted namespace is emptied, then goes), the garbage collector (dependents
//! go with their owner, by `ownerReferences`), the scheduler and the kubelet.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::StandInState;
use crate::resources::RESOURCES;
use crate::store::{ChangeKind, Filter, Preconditions, name_of};

/// Runs the controllers until the state is dropped.
pub(crate) fn spawn(state: &Arc<StandInState>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(state);
    let mut changes = state.store.subscribe();
    tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Missed changes: look at the whole cluster again, with every controller a
                    // change can drive (a missed Deployment has no other change to wake it).
                    let Some(state) = weak.upgrade() else { return };
                    resync(&state);
                    crate::workloads::reconcile(&state);
                    crate::taints::reconcile(&state);
                    crate::scheduler::schedule_pending(&state);
                    crate::kubelet::sync(&state);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(state) = weak.upgrade() else { return };
            // Take every change already queued, then run the scheduler and the kubelet once.
            let mut batch = vec![change];
            while let Ok(more) = changes.try_recv() {
                batch.push(more);
            }
            let mut pods_or_nodes = false;
            let mut workloads = false;
            for change in &batch {
                let object = &change.object;
                match (change.resource.group, change.resource.plural, change.kind) {
                    ("", "namespaces", ChangeKind::Modified)
                        if object.pointer("/metadata/deletionTimestamp").is_some() =>
                    {
                        empty_namespace(&state, name_of(object));
                    }
                    (_, _, ChangeKind::Deleted) => collect_dependents(&state, object),
                    _ => {}
                }
                let core = change.resource.group.is_empty()
                    && matches!(change.resource.plural, "pods" | "nodes");
                pods_or_nodes |= core;
                workloads |= core || matches!(change.resource.group, "apps" | "policy");
            }
            if workloads {
                crate::workloads::reconcile(&state);
            }
            if pods_or_nodes {
                crate::taints::reconcile(&state);
                crate::scheduler::schedule_pending(&state);
                crate::kubelet::sync(&state);
            }
        }
    })
}

/// Looks at every terminating namespace and every orphaned dependent.
fn resync(state: &StandInState) {
    if let Some(ns) = crate::resources::find("", "v1", "namespaces") {
        let (namespaces, _) = state.store.list(ns, &Filter::default());
        for n in namespaces {
            if n.pointer("/metadata/deletionTimestamp").is_some() {
                empty_namespace(state, name_of(&n));
            }
        }
    }
}

/// Deletes everything in namespace `name`, then the namespace.
fn empty_namespace(state: &StandInState, name: &str) {
    let filter = Filter {
        namespace: Some(name.to_owned()),
        ..Filter::default()
    };
    for resource in RESOURCES.iter().filter(|r| r.namespaced && !r.read_only) {
        let (items, _) = state.store.list(resource, &filter);
        for item in items {
            let _ = state.store.delete(
                resource,
                name,
                name_of(&item),
                &Preconditions::default(),
                None,
                false,
            );
        }
    }
    state.store.remove_namespace(name);
}

/// Deletes the objects whose `ownerReferences` name `owner` (background propagation).
fn collect_dependents(state: &StandInState, owner: &Value) {
    let Some(uid) = owner.pointer("/metadata/uid").and_then(Value::as_str) else {
        return;
    };
    let namespace = owner
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let filter = Filter {
        namespace: namespace.clone(),
        ..Filter::default()
    };
    for resource in RESOURCES.iter().filter(|r| !r.read_only) {
        let (items, _) = state.store.list(resource, &filter);
        for item in items {
            let owned = item
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                });
            if owned {
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let _ = state.store.delete(
                    resource,
                    ns,
                    name_of(&item),
                    &Preconditions::default(),
                    None,
                    false,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::resources::find;
    use crate::store::Filter;

    /// A controller that falls behind the store's changes (more than the channel holds arrive
    /// before it runs) loses the changes it missed: it must still reconcile the workloads, or
    /// a Deployment whose creation was among them never gets its ReplicaSet.
    #[tokio::test(flavor = "current_thread")]
    async fn a_controller_that_fell_behind_still_reconciles_workloads() {
        let stand_in = crate::StandIn::start()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let store = &stand_in.state.store;
        let type_of = |group, version, plural| {
            find(group, version, plural).unwrap_or_else(|| panic!("no {plural}"))
        };
        let (deployments, maps, sets) = (
            type_of("apps", "v1", "deployments"),
            type_of("", "v1", "configmaps"),
            type_of("apps", "v1", "replicasets"),
        );
        // Without yielding: the controller cannot run until all of this is in the store.
        store
            .create(
                deployments,
                "default",
                json!({
                    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
                    "spec": { "replicas": 1,
                        "selector": { "matchLabels": { "app": "web" } },
                        "template": { "metadata": { "labels": { "app": "web" } },
                            "spec": { "containers": [{ "name": "main", "image": "busybox" }] } } }
                }),
                false,
            )
            .unwrap_or_else(|e| panic!("deployment: {e:?}"));
        for i in 0..5_000 {
            store
                .create(
                    maps,
                    "default",
                    json!({ "apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": { "name": format!("filler-{i}") } }),
                    false,
                )
                .unwrap_or_else(|e| panic!("config map: {e:?}"));
        }
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if !store.list(sets, &Filter::default()).0.is_empty() {
                return;
            }
        }
        panic!("the Deployment got no ReplicaSet after the controller fell behind");
    }
}
