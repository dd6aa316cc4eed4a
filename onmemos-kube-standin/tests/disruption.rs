//! Deployments, replica sets and disruption budgets, and evictions as the apiserver decides
//! them: blocked by a budget with a 429 naming it (at once without retries; kube's default
//! client retries until the budget allows), bypassed for pods that are not running, refused
//! with a 500 under two budgets, and dry runs that change nothing.
#![cfg(feature = "kube")]

mod common;

use std::time::Duration;

use common::Env;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use onmemos_kube_standin::NodeSpec;
use serde_json::json;

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 60 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn ready_pods(pods: &Api<Pod>) -> Vec<Pod> {
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_respect_the_disruption_budget() {
    let env = Env::new().await;
    if let Some(s) = &env.standin {
        s.cluster()
            .add_node(&NodeSpec::new("node-a"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let ns = env.namespace.clone();
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "terminationGracePeriodSeconds": 1, "containers": [{ "name": "main", "image": "busybox", "command": ["sleep", "3600"] }] }
            }
        }
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("two ready pods", || async {
        ready_pods(&pods).await.len() == 2
    })
    .await;
    eventually("the deployment's status", || async {
        deployments
            .get("web")
            .await
            .ok()
            .and_then(|d| d.status)
            .and_then(|s| s.ready_replicas)
            == Some(2)
    })
    .await;

    let budget: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": "web" } } }
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    budgets
        .create(&PostParams::default(), &budget)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("the budget observed", || async {
        budgets
            .get("web")
            .await
            .ok()
            .and_then(|b| b.status)
            .is_some_and(|s| {
                s.observed_generation == Some(1)
                    && s.current_healthy == 2
                    && s.desired_healthy == 2
                    && s.disruptions_allowed == 0
            })
    })
    .await;

    let victim = ready_pods(&pods).await[0]
        .metadata
        .name
        .clone()
        .unwrap_or_default();
    // Without retries: the 429 at once, naming the budget.
    let strict: Api<Pod> = Api::namespaced(env.client_without_retries().await, &ns);
    match strict.evict(&victim, &EvictParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (429, "TooManyRequests")
            );
            assert_eq!(
                status.message,
                "Cannot evict pod as it would violate the pod's disruption budget."
            );
            let cause = status.details.and_then(|d| d.causes.into_iter().next());
            let cause = cause.unwrap_or_else(|| panic!("no cause"));
            assert_eq!(cause.reason, "DisruptionBudget");
            assert_eq!(
                cause.message,
                "The disruption budget web needs 2 healthy pods and has 2 currently"
            );
        }
        other => panic!("the eviction was not refused: {other:?}"),
    }
    // A dry run changes nothing either way.
    let dry = EvictParams {
        delete_options: None,
        post_options: PostParams {
            dry_run: true,
            ..Default::default()
        },
    };
    let _ = strict.evict(&victim, &dry).await;
    assert!(
        pods.get(&victim)
            .await
            .is_ok_and(|p| p.metadata.deletion_timestamp.is_none())
    );

    // kube's default client retries the 429; a third replica makes room, and it succeeds.
    let patient = pods.clone();
    let name = victim.clone();
    let eviction = tokio::spawn(async move { patient.evict(&name, &EvictParams::default()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = tokio::time::timeout(Duration::from_secs(60), eviction).await;
    assert!(
        matches!(done, Ok(Ok(Ok(_)))),
        "the retried eviction did not succeed: {done:?}"
    );
    eventually("the evicted pod to go", || async {
        matches!(pods.get_opt(&victim).await, Ok(None))
    })
    .await;

    // Two budgets over the same pods: the apiserver's 500.
    let mut second = budget.clone();
    second.metadata.name = Some("web-2".into());
    second.metadata.resource_version = None;
    budgets
        .create(&PostParams::default(), &second)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let any = ready_pods(&pods).await[0]
        .metadata
        .name
        .clone()
        .unwrap_or_default();
    match strict.evict(&any, &EvictParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500, "{status:?}"),
        other => panic!("two budgets did not refuse: {other:?}"),
    }

    // A pod that is not running is evicted without a budget check.
    let pending: Pod = serde_json::from_value(json!({
        "metadata": { "name": "nowhere", "labels": { "app": "web" } },
        "spec": { "nodeSelector": { "no": "such-node" }, "containers": [{ "name": "main", "image": "busybox" }] }
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    pods.create(&PostParams::default(), &pending)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    strict
        .evict("nowhere", &EvictParams::default())
        .await
        .unwrap_or_else(|e| panic!("a pending pod: {e}"));
    eventually("the pending pod to go", || async {
        matches!(pods.get_opt("nowhere").await, Ok(None))
    })
    .await;
    env.finish().await;
}
