//! Spot interruptions, as each provider signals them to the cluster:
//! - **GKE**: graceful node shutdown. The node goes `Ready=False` ("node is shutting down"),
//!   every pod on it gets `DisruptionTarget` (`TerminationByKubelet`), its processes SIGTERM
//!   then SIGKILL after the grace period, and stays `Failed` (`Terminated`); then the node goes.
//! - **AWS Node Termination Handler**: the node is tainted
//!   `aws-node-termination-handler/spot-itn:NoSchedule` and cordoned, its pods evicted through
//!   the eviction API (budgets apply), and the node goes when the grace period ends.
//! - **Karpenter**: the node is tainted `karpenter.sh/disrupted:NoSchedule`, its pods evicted,
//!   and the node goes when the grace period ends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::StandInState;
use crate::resources;
use crate::status::ApiError;
use crate::store::{Filter, str_at, timestamp};

/// Whose interruption to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpotProvider {
    /// GKE spot and preemptible VMs (graceful node shutdown).
    Gke,
    /// EKS with the AWS Node Termination Handler.
    AwsNodeTerminationHandler,
    /// Karpenter's interruption handling.
    Karpenter,
}

/// Starts the interruption of `node`; it is gone `grace` later.
pub(crate) fn interrupt(
    state: &Arc<StandInState>,
    node: &str,
    provider: SpotProvider,
    grace: Duration,
) -> Result<(), ApiError> {
    let (Some(nodes), Some(pods)) = (
        resources::find("", "v1", "nodes"),
        resources::find("", "v1", "pods"),
    ) else {
        return Err(ApiError::internal("no nodes or pods"));
    };
    state.store.modify(nodes, "", node, false, false, |current| {
        let mut next = current.clone();
        let taint = match provider {
            SpotProvider::Gke => None,
            SpotProvider::AwsNodeTerminationHandler => Some(json!({"key": "aws-node-termination-handler/spot-itn", "value": uuid::Uuid::new_v4().to_string(), "effect": "NoSchedule", "timeAdded": timestamp()})),
            SpotProvider::Karpenter => Some(json!({"key": "karpenter.sh/disrupted", "effect": "NoSchedule", "timeAdded": timestamp()})),
        };
        if let Some(taint) = taint {
            let mut taints = next.pointer("/spec/taints").and_then(Value::as_array).cloned().unwrap_or_default();
            taints.push(taint);
            next["spec"]["taints"] = Value::Array(taints);
            next["spec"]["unschedulable"] = json!(true);
        }
        Ok(next)
    })?;
    if provider == SpotProvider::Gke {
        state.store.modify(nodes, "", node, true, false, |current| {
            let mut next = current.clone();
            crate::conditions::set(&mut next["status"], json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "node is shutting down", "lastHeartbeatTime": timestamp(), "lastTransitionTime": timestamp()}));
            Ok(next)
        })?;
        let (all, _) = state.store.list(pods, &Filter::default());
        for pod in all.iter().filter(|p| str_at(p, "/spec/nodeName") == node) {
            crate::conditions::disruption_target(
                state,
                str_at(pod, "/metadata/namespace"),
                str_at(pod, "/metadata/name"),
                "TerminationByKubelet",
                crate::kubelet::SHUTDOWN_MESSAGE,
            );
        }
        crate::kubelet::shut_down_node(state, node, grace.as_secs());
    }
    let state = state.clone();
    let node = node.to_owned();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + grace;
        if provider != SpotProvider::Gke {
            // Evict what runs there until the node goes (budgets may hold some back).
            while tokio::time::Instant::now() < deadline {
                let (all, _) = state.store.list(pods, &Filter::default());
                let left: Vec<&Value> = all
                    .iter()
                    .filter(|p| {
                        str_at(p, "/spec/nodeName") == node
                            && p.pointer("/metadata/deletionTimestamp").is_none()
                    })
                    .collect();
                if left.is_empty() {
                    break;
                }
                for pod in left {
                    let _ = crate::eviction::evict_pod(
                        &state,
                        str_at(pod, "/metadata/namespace"),
                        str_at(pod, "/metadata/name"),
                        &json!({}),
                        false,
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        tokio::time::sleep_until(deadline).await;
        let _ = crate::Cluster::from_state(state.clone()).remove_node(&node);
    });
    Ok(())
}
