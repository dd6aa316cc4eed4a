//! `metrics.k8s.io/v1beta1`: pod and node metrics from the real usage of the kubelet's
//! processes (CPU time over the container's life, resident memory), read from `/proc`.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::StandInState;
use crate::api::Target;
use crate::resources;
use crate::status::ApiError;
use crate::store::{Filter, timestamp};

/// Clock ticks per second and the page size, for `/proc`.
fn ticks_and_page() -> (f64, u64) {
    (100.0, rustix::param::page_size() as u64)
}

/// CPU seconds and resident bytes of every process in process group `pgid`.
pub(crate) fn group_usage(pgid: i32) -> (f64, u64) {
    let (ticks, page) = ticks_and_page();
    let mut cpu = 0.0;
    let mut memory = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0.0, 0);
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state is field 3, pgrp 5,
        // utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(2).and_then(|g| g.parse::<i32>().ok()) != Some(pgid) {
            continue;
        }
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        cpu += (t(11) + t(12)) / ticks;
        if let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) {
            let resident: u64 = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            memory += resident * page;
        }
    }
    (cpu, memory)
}

fn quantities(cpu_millis: u64, memory: u64) -> Value {
    json!({ "cpu": format!("{}n", cpu_millis * 1_000_000), "memory": format!("{}Ki", memory / 1024) })
}

fn pod_metrics(state: &StandInState, pod: &Value) -> Option<(Value, u64, u64)> {
    let ns = pod.pointer("/metadata/namespace")?.as_str()?;
    let name = pod.pointer("/metadata/name")?.as_str()?;
    let run = state.kubelet.pod(ns, name)?;
    let mut containers = Vec::new();
    let (mut cpu_total, mut mem_total) = (0, 0);
    for c in &run.containers {
        let (cpu, memory) = c.usage();
        cpu_total += cpu;
        mem_total += memory;
        containers.push(json!({ "name": c.name, "usage": quantities(cpu, memory) }));
    }
    Some((
        json!({
            "kind": "PodMetrics",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": { "name": name, "namespace": ns, "creationTimestamp": timestamp(),
                "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({})) },
            "timestamp": timestamp(),
            "window": "10s",
            "containers": containers,
        }),
        cpu_total,
        mem_total,
    ))
}

/// Serves the metrics API.
pub(crate) fn serve(
    state: &Arc<StandInState>,
    method: &Method,
    target: &Target,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_supported(
            target.resource,
            method.as_str(),
        ));
    }
    let (Some(pods), Some(nodes)) = (
        resources::find("", "v1", "pods"),
        resources::find("", "v1", "nodes"),
    ) else {
        return Err(ApiError::internal("no pods or nodes"));
    };
    let answer = |v: Value| (StatusCode::OK, axum::Json(v)).into_response();
    if target.resource.plural == "pods" {
        let filter = Filter {
            namespace: (!target.namespace.is_empty()).then(|| target.namespace.clone()),
            ..Filter::default()
        };
        let (all, _) = state.store.list(pods, &filter);
        if let Some(name) = &target.name {
            let pod = state.store.get(pods, &target.namespace, name)?;
            return pod_metrics(state, &pod)
                .map(|m| answer(m.0))
                .ok_or_else(|| ApiError::not_found(target.resource, name));
        }
        let items: Vec<Value> = all
            .iter()
            .filter_map(|p| pod_metrics(state, p))
            .map(|m| m.0)
            .collect();
        return Ok(answer(
            json!({ "kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items }),
        ));
    }
    let (all_nodes, _) = state.store.list(nodes, &Filter::default());
    let (all_pods, _) = state.store.list(pods, &Filter::default());
    let node_metrics = |node: &Value| {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (cpu, memory) = all_pods
            .iter()
            .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(name))
            .filter_map(|p| pod_metrics(state, p))
            .fold((0, 0), |(c, m), (_, pc, pm)| (c + pc, m + pm));
        json!({
            "kind": "NodeMetrics",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": { "name": name, "creationTimestamp": timestamp(),
                "labels": node.pointer("/metadata/labels").cloned().unwrap_or(json!({})) },
            "timestamp": timestamp(),
            "window": "10s",
            "usage": quantities(cpu, memory),
        })
    };
    if let Some(name) = &target.name {
        let node = state
            .store
            .get(nodes, "", name)
            .map_err(|_| ApiError::not_found(target.resource, name))?;
        return Ok(answer(node_metrics(&node)));
    }
    let items: Vec<Value> = all_nodes.iter().map(node_metrics).collect();
    Ok(answer(
        json!({ "kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items }),
    ))
}
