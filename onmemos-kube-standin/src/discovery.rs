//! Discovery (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`), in the legacy JSON form
//! kubectl and kube-rs fall back to, and `/version`.

use serde_json::{Value, json};

use crate::resources::{RESOURCES, ResourceType, groups};

/// `/version`: a server kubectl's dispatcher picks a recent client for (minor ≥ 30, so exec
/// goes over WebSocket).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-onmemos-standin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }]
    })
}

fn group(name: &str, version: &str) -> Value {
    let gv = format!("{name}/{version}");
    json!({
        "name": name,
        "versions": [{ "groupVersion": gv, "version": version }],
        "preferredVersion": { "groupVersion": gv, "version": version }
    })
}

/// `/apis`.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(|(g, v)| group(g, v)).collect::<Vec<_>>()
    })
}

/// `/apis/{group}`, if the group is served.
pub fn api_group(name: &str) -> Option<Value> {
    groups()
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(g, v)| {
            let mut out = group(g, v);
            out["kind"] = json!("APIGroup");
            out["apiVersion"] = json!("v1");
            out
        })
}

fn entry(r: &ResourceType) -> Value {
    json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
        "shortNames": r.short_names,
    })
}

fn sub_entry(r: &ResourceType, sub: &str) -> Value {
    let (kind, verbs): (&str, &[&str]) = match sub {
        "status" => (r.kind, &["get", "patch", "update"]),
        "scale" => ("Scale", &["get", "patch", "update"]),
        "eviction" => ("Eviction", &["create"]),
        "binding" => ("Binding", &["create"]),
        "exec" | "attach" => ("PodExecOptions", &["create", "get"]),
        "log" => ("Pod", &["get"]),
        "finalize" => ("Namespace", &["update"]),
        _ => (r.kind, &["get"]),
    };
    let mut e = json!({
        "name": format!("{}/{sub}", r.plural),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    match sub {
        "scale" => {
            e["group"] = json!("autoscaling");
            e["version"] = json!("v1");
        }
        "eviction" => {
            e["group"] = json!("policy");
            e["version"] = json!("v1");
        }
        _ => {}
    }
    e
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in &served {
        resources.push(entry(r));
        for sub in r.subresources {
            resources.push(sub_entry(r, sub));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": served[0].api_version(),
        "resources": resources
    }))
}
