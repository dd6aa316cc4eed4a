//! The stand-in as a cluster: the scheduler (selectors, affinity, taints, resources), the
//! kubelet running pods as real processes (phases, exit codes, restarts, logs, graceful
//! deletion), image pull errors and killed containers. These script the cluster, so they
//! run on the stand-in only.
#![cfg(feature = "kube")]

mod common;

use std::time::Duration;

use common::Env;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use onmemos_kube_standin::{NodeSpec, Taint};
use serde_json::{Value, json};

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec }))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn sh(script: &str) -> Value {
    json!([{ "name": "main", "image": "busybox", "command": ["sh", "-c", script] }])
}

/// Waits up to 30 s for pod `name` to satisfy `check`; the pod.
async fn wait_for(pods: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let current = pods.get_opt(name).await.unwrap_or_else(|e| panic!("{e}"));
        if let Some(p) = &current
            && check(p)
        {
            return p.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod {name} never became {what}: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn scheduled_condition(p: &Pod) -> Option<(String, String)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| (c.status.clone(), c.message.clone().unwrap_or_default()))
}

#[tokio::test]
async fn pods_run_as_processes_with_logs_exit_codes_and_graceful_deletion() {
    let env = Env::new().await;
    let Some(s) = env.standin("pods_run_as_processes") else {
        return env.finish().await;
    };
    s.cluster()
        .add_node(&NodeSpec::new("node-a"))
        .unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let pp = PostParams::default();

    pods.create(
        &pp,
        &pod(
            "web",
            json!({ "containers": sh("echo pid=$$; echo hello from $GREETING; exec sleep 300") }),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let running = wait_for(&pods, "web", "Running", |p| phase(p) == "Running").await;
    let status = running.status.clone().unwrap_or_default();
    assert_eq!(
        running.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("node-a")
    );
    assert!(status.pod_ip.is_some() && status.start_time.is_some());
    let cs = &status.container_statuses.unwrap_or_default()[0];
    assert!(cs.ready && cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
    assert_eq!(
        scheduled_condition(&running).map(|c| c.0).as_deref(),
        Some("True")
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs = pods
            .logs("web", &LogParams::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if logs.contains("hello") || tokio::time::Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(logs.contains("hello from"), "{logs:?}");
    let pid: i32 = logs
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {logs:?}"));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container's process runs"
    );

    // A graceful deletion: the pod is marked, its process stopped, then the pod goes.
    pods.delete("web", &DeleteParams::default().grace_period(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pods.get_opt("web").await.ok().flatten().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted pod stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted pod's process {pid} survived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Exit codes and restart policies.
    pods.create(
        &pp,
        &pod(
            "fails",
            json!({ "restartPolicy": "Never", "containers": sh("exit 3") }),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let failed = wait_for(&pods, "fails", "Failed", |p| phase(p) == "Failed").await;
    let terminated = failed
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c[0].state.clone())
        .and_then(|s| s.terminated);
    assert_eq!(
        terminated.map(|t| (t.exit_code, t.reason.unwrap_or_default())),
        Some((3, "Error".into()))
    );
    pods.create(
        &pp,
        &pod(
            "succeeds",
            json!({ "restartPolicy": "OnFailure", "containers": sh("true") }),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    wait_for(&pods, "succeeds", "Succeeded", |p| phase(p) == "Succeeded").await;

    // A killed container restarts under `Always`.
    pods.create(
        &pp,
        &pod("restarts", json!({ "containers": sh("exec sleep 300") })),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    wait_for(&pods, "restarts", "Running", |p| phase(p) == "Running").await;
    assert!(
        s.cluster()
            .kill_container(&env.namespace, "restarts", "main")
    );
    wait_for(&pods, "restarts", "restarted once", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| {
                c[0].restart_count == 1 && c[0].state.as_ref().is_some_and(|s| s.running.is_some())
            })
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn the_scheduler_honours_selectors_affinity_taints_and_resources() {
    let env = Env::new().await;
    let Some(s) = env.standin("the_scheduler_honours") else {
        return env.finish().await;
    };
    let cluster = s.cluster();
    cluster
        .add_node(&NodeSpec::new("small").capacity(1000, 1 << 30, 110))
        .unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let pp = PostParams::default();
    let unschedulable = |p: &Pod| scheduled_condition(p).is_some_and(|c| c.0 == "False");

    // Too big for the only node.
    let big = json!([{ "name": "main", "image": "busybox", "command": ["sleep", "300"],
        "resources": { "requests": { "cpu": "2", "memory": "128Mi" } } }]);
    pods.create(&pp, &pod("big", json!({ "containers": big })))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let waiting = wait_for(&pods, "big", "unschedulable", unschedulable).await;
    let message = scheduled_condition(&waiting)
        .map(|c| c.1)
        .unwrap_or_default();
    assert!(
        message.starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{message}"
    );
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.namespace);
    let failed = events
        .list(&ListParams::default().fields("involvedObject.name=big,reason=FailedScheduling"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(failed.items.len(), 1, "one FailedScheduling event");

    // A node selector no node matches, until one does.
    pods.create(
        &pp,
        &pod(
            "picky",
            json!({ "nodeSelector": { "disk": "ssd" }, "containers": sh("exec sleep 300") }),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let waiting = wait_for(&pods, "picky", "unschedulable", unschedulable).await;
    assert!(
        scheduled_condition(&waiting)
            .is_some_and(|c| c.1.contains("didn't match Pod's node affinity/selector"))
    );
    cluster
        .add_node(
            &NodeSpec::new("fast").label("disk", "ssd").taint(Taint::new(
                "dedicated",
                "gpu",
                "NoSchedule",
            )),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // The matching node is tainted: still unschedulable, now for the taint.
    let tainted = wait_for(&pods, "picky", "refused by the taint", |p| {
        scheduled_condition(p).is_some_and(|c| c.1.contains("untolerated taint {dedicated: gpu}"))
    })
    .await;
    assert!(
        tainted
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none()
    );
    // A pod that tolerates the taint and requires the label by affinity lands there.
    pods.create(
        &pp,
        &pod(
            "tolerant",
            json!({
                "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule" }],
                "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "disk", "operator": "In", "values": ["ssd"] }] }]
                } } },
                "containers": sh("exec sleep 300")
            }),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let placed = wait_for(&pods, "tolerant", "scheduled", |p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("fast")
    })
    .await;
    assert_eq!(
        scheduled_condition(&placed).map(|c| c.0).as_deref(),
        Some("True")
    );

    // An image that cannot be pulled.
    cluster.refuse_image("registry.example/missing:1");
    pods.create(
        &pp,
        &pod(
            "unpullable",
            json!({ "containers": [{ "name": "main", "image": "registry.example/missing:1" }] }),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let backoff = wait_for(&pods, "unpullable", "in ImagePullBackOff", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| {
                c[0].state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("ImagePullBackOff")
            })
    })
    .await;
    assert_eq!(phase(&backoff), "Pending");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_speaks_the_channel_protocol_with_exit_codes_stdin_and_a_tty() {
    use kube::api::AttachParams;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let env = Env::new().await;
    let Some(s) = env.standin("exec_speaks_the_channel_protocol") else {
        return env.finish().await;
    };
    s.cluster()
        .add_node(&NodeSpec::new("node-x"))
        .unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let spec = json!({ "containers": [{ "name": "main", "image": "busybox", "command": ["sleep", "300"],
        "env": [{ "name": "FROM_POD", "value": "yes" }] }] });
    pods.create(&PostParams::default(), &pod("box", spec))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for(&pods, "box", "Running", |p| phase(p) == "Running").await;

    // Output on its channels, the container's environment, and the exit code as a status.
    let mut run = pods
        .exec(
            "box",
            ["sh", "-c", "echo out $FROM_POD; echo err >&2; exit 3"],
            &AttachParams::default().stderr(true),
        )
        .await
        .unwrap_or_else(|e| panic!("exec: {e}"));
    let mut out = String::new();
    let mut err = String::new();
    let mut stdout = run.stdout().unwrap_or_else(|| panic!("no stdout"));
    let mut stderr = run.stderr().unwrap_or_else(|| panic!("no stderr"));
    stdout
        .read_to_string(&mut out)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stderr
        .read_to_string(&mut err)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = run
        .take_status()
        .unwrap_or_else(|| panic!("no status"))
        .await
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(out, "out yes\n");
    assert_eq!(err, "err\n");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = status
        .details
        .and_then(|d| d.causes)
        .and_then(|c| c.into_iter().next());
    assert_eq!(
        cause.map(|c| (c.reason, c.message)),
        Some((Some("ExitCode".into()), Some("3".into())))
    );

    // Standard input, closed by the client (v5), reaches the command.
    let mut cat = pods
        .exec(
            "box",
            ["sh", "-c", "tr a-z A-Z"],
            &AttachParams::default().stdin(true).stderr(false),
        )
        .await
        .unwrap_or_else(|e| panic!("exec: {e}"));
    let mut input = cat.stdin().unwrap_or_else(|| panic!("no stdin"));
    input
        .write_all(b"shout\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // kube's stdin ends at a shutdown (dropping the writer does not end it).
    input.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let mut shouted = String::new();
    cat.stdout()
        .unwrap_or_else(|| panic!("no stdout"))
        .read_to_string(&mut shouted)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shouted, "SHOUT\n");
    let ok = cat
        .take_status()
        .unwrap_or_else(|| panic!("no status"))
        .await;
    assert_eq!(ok.and_then(|s| s.status).as_deref(), Some("Success"));

    // A TTY: the size a resize sets is the one the shell sees.
    let mut tty = pods
        .exec("box", ["sh"], &AttachParams::interactive_tty())
        .await
        .unwrap_or_else(|e| panic!("exec: {e}"));
    let mut resize = tty
        .terminal_size()
        .unwrap_or_else(|| panic!("no resize channel"));
    use futures::SinkExt as _;
    resize
        .send(kube::api::TerminalSize {
            width: 123,
            height: 45,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut input = tty.stdin().unwrap_or_else(|| panic!("no stdin"));
    input
        .write_all(b"stty size; exit\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut screen = String::new();
    let mut output = tty.stdout().unwrap_or_else(|| panic!("no stdout"));
    let _ = tokio::time::timeout(Duration::from_secs(20), output.read_to_string(&mut screen)).await;
    assert!(screen.contains("45 123"), "{screen:?}");
    env.finish().await;
}

fn condition(p: &Pod, kind: &str) -> Option<(String, String)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_interruptions_as_gke_karpenter_and_the_aws_handler_signal_them() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Node;
    use onmemos_kube_standin::SpotProvider;

    let env = Env::new().await;
    let Some(s) = env.standin("spot_interruptions") else {
        return env.finish().await;
    };
    let cluster = s.cluster();
    let suffix = &env.namespace[2..];
    let (gke, kar, steady) = (
        format!("gke-{suffix}"),
        format!("kar-{suffix}"),
        format!("od-{suffix}"),
    );
    cluster
        .add_node(&NodeSpec::new(&gke).gke_spot())
        .unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let nodes: Api<Node> = Api::all(env.client.clone());
    let on = |node: &str| json!({ "nodeName": node, "terminationGracePeriodSeconds": 1, "containers": sh("exec sleep 300") });

    // GKE: graceful node shutdown. The pod is stopped and stays Failed; then the node goes.
    pods.create(&PostParams::default(), &pod("batch", on(&gke)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let running = wait_for(&pods, "batch", "Running", |p| phase(p) == "Running").await;
    // Every status a watcher sees: the pod never shows `Failed` without its reason.
    let mut changes = pods
        .watch(
            &WatchParams::default()
                .fields("metadata.name=batch")
                .timeout(30),
            running.metadata.resource_version.as_deref().unwrap_or("0"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .boxed();
    cluster
        .interrupt_spot(&gke, SpotProvider::Gke, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let node = nodes.get(&gke).await.unwrap_or_else(|e| panic!("{e}"));
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"));
    assert_eq!(
        ready.map(|c| (c.status, c.message.unwrap_or_default())),
        Some(("False".into(), "node is shutting down".into()))
    );
    let stopped = loop {
        let event = tokio::time::timeout(Duration::from_secs(30), changes.try_next())
            .await
            .unwrap_or_else(|_| panic!("the pod never failed"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the watch ended"));
        match event {
            WatchEvent::Modified(p) if phase(&p) == "Failed" => break p,
            WatchEvent::Modified(_) | WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        condition(&stopped, "DisruptionTarget"),
        Some(("True".into(), "TerminationByKubelet".into()))
    );
    assert_eq!(
        stopped.status.and_then(|s| s.reason).as_deref(),
        Some("Terminated")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while nodes.get_opt(&gke).await.ok().flatten().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the interrupted node stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Karpenter: taint, evict through the eviction API, then the node goes; the deployment's
    // replacement lands on the node that stays.
    cluster
        .add_node(&NodeSpec::new(&kar).karpenter_spot())
        .unwrap_or_else(|e| panic!("{e}"));
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "svc" },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "svc" } },
            "template": { "metadata": { "labels": { "app": "svc" } },
                "spec": { "terminationGracePeriodSeconds": 1, "containers": sh("exec sleep 300") } } }
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let on_node = |node: String| {
        let pods = pods.clone();
        async move {
            pods.list(
                &ListParams::default()
                    .labels("app=svc")
                    .fields(&format!("spec.nodeName={node}")),
            )
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter(|p| phase(p) == "Running")
                    .count()
            })
            .unwrap_or(0)
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while on_node(kar.clone()).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica never ran on the spot node"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster
        .add_node(&NodeSpec::new(&steady))
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .interrupt_spot(&kar, SpotProvider::Karpenter, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}"));
    let tainted = nodes.get(&kar).await.unwrap_or_else(|e| panic!("{e}"));
    let taints: Vec<String> = tainted
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    assert!(
        taints.contains(&"karpenter.sh/disrupted:NoSchedule".to_owned()),
        "{taints:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while on_node(steady.clone()).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replacement never ran on the steady node"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while nodes.get_opt(&kar).await.ok().flatten().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the interrupted node stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The AWS Node Termination Handler: its taint and a cordon.
    let eks = format!("eks-{suffix}");
    cluster
        .add_node(&NodeSpec::new(&eks).eks_spot())
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .interrupt_spot(
            &eks,
            SpotProvider::AwsNodeTerminationHandler,
            Duration::from_secs(1),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let handled = nodes.get(&eks).await.unwrap_or_else(|e| panic!("{e}"));
    let spec = handled.spec.unwrap_or_default();
    assert_eq!(spec.unschedulable, Some(true));
    assert!(
        spec.taints
            .unwrap_or_default()
            .iter()
            .any(|t| t.key == "aws-node-termination-handler/spot-itn" && t.effect == "NoSchedule")
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_execute_taint_evicts_what_does_not_tolerate_it() {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};

    let env = Env::new().await;
    let Some(s) = env.standin("a_no_execute_taint") else {
        return env.finish().await;
    };
    let node = format!("tainted-{}", &env.namespace[2..]);
    s.cluster()
        .add_node(&NodeSpec::new(&node))
        .unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let with = |tolerations: Value| {
        json!({ "nodeName": node, "terminationGracePeriodSeconds": 1,
        "tolerations": tolerations, "containers": sh("exec sleep 300") })
    };
    pods.create(&PostParams::default(), &pod("plain", with(json!([]))))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pods.create(&PostParams::default(), &pod("brief", with(json!([{ "key": "maintenance", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1 }]))))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pods.create(
        &PostParams::default(),
        &pod(
            "patient",
            with(json!([{ "key": "maintenance", "operator": "Exists", "effect": "NoExecute" }])),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for name in ["plain", "brief", "patient"] {
        wait_for(&pods, name, "Running", |p| phase(p) == "Running").await;
    }
    let nodes: Api<Node> = Api::all(env.client.clone());
    nodes
        .patch(
            &node,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "taints": [{ "key": "maintenance", "effect": "NoExecute" }] } }),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let gone = |name: &'static str| {
        let pods = pods.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while pods.get_opt(name).await.ok().flatten().is_some() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} stayed on the tainted node"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    gone("plain").await;
    gone("brief").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        pods.get("patient")
            .await
            .is_ok_and(|p| p.metadata.deletion_timestamp.is_none()),
        "a pod tolerating the taint forever was evicted"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_reaches_the_containers_own_terminal() {
    use futures::SinkExt as _;
    use kube::api::AttachParams;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let env = Env::new().await;
    let Some(s) = env.standin("attach") else {
        return env.finish().await;
    };
    s.cluster()
        .add_node(&NodeSpec::new(&format!("att-{}", &env.namespace[2..])))
        .unwrap_or_else(|e| panic!("{e}"));
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let spec = json!({ "restartPolicy": "Never", "containers": [{ "name": "main", "image": "busybox",
        "command": ["sh"], "tty": true, "stdin": true }] });
    pods.create(&PostParams::default(), &pod("console", spec))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for(&pods, "console", "Running", |p| phase(p) == "Running").await;
    let mut attached = pods
        .attach("console", &AttachParams::interactive_tty())
        .await
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let mut resize = attached
        .terminal_size()
        .unwrap_or_else(|| panic!("no resize channel"));
    resize
        .send(kube::api::TerminalSize {
            width: 100,
            height: 30,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut input = attached.stdin().unwrap_or_else(|| panic!("no stdin"));
    input
        .write_all(b"stty size; exit 3\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut screen = String::new();
    let mut output = attached.stdout().unwrap_or_else(|| panic!("no stdout"));
    let _ = tokio::time::timeout(Duration::from_secs(20), output.read_to_string(&mut screen)).await;
    assert!(screen.contains("30 100"), "{screen:?}");
    let status = attached
        .take_status()
        .unwrap_or_else(|| panic!("no status"))
        .await;
    assert_eq!(
        status.and_then(|s| s.reason).as_deref(),
        Some("NonZeroExitCode")
    );
    let done = wait_for(&pods, "console", "Failed", |p| phase(p) == "Failed").await;
    let code = done
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c[0].state.clone())
        .and_then(|s| s.terminated)
        .map(|t| t.exit_code);
    assert_eq!(code, Some(3));
    env.finish().await;
}
