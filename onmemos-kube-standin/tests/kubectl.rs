//! The real `kubectl` against the stand-in (or a real cluster, with `KUBECONFIG`): get,
//! watch, apply (client-side and server-side), selectors, delete, and namespace deletion.
//! `kubectl` on the PATH is required in CI; elsewhere its absence skips these, saying so.
#![cfg(feature = "kube")]

mod common;

use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Env;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// Whether kubectl can run here (it must in CI).
fn have_kubectl() -> bool {
    onmemos_kube_standin::kubectl_on_path()
}

struct Kubectl<'a> {
    env: &'a Env,
    cache: tempfile::TempDir,
}

impl<'a> Kubectl<'a> {
    fn new(env: &'a Env) -> Self {
        Self {
            env,
            cache: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.env.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(["-n", &self.env.namespace])
            .args(args);
        cmd
    }

    /// Runs kubectl; its output, whatever its exit code. (It blocks this worker thread; the
    /// stand-in is served by the other.)
    fn run(&self, args: &[&str]) -> Output {
        tokio::task::block_in_place(|| {
            self.command(args)
                .output()
                .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
        })
    }

    /// Runs kubectl and requires success; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn write_json(dir: &std::path::Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_apply_and_delete_as_against_a_cluster() {
    if !have_kubectl() {
        return;
    }
    let env = Env::new().await;
    let k = Kubectl::new(&env);
    let namespaces: Value = serde_json::from_str(&k.ok(&["get", "namespaces", "-o", "json"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = namespaces["items"]
        .as_array()
        .map(|i| {
            i.iter()
                .filter_map(|n| n.pointer("/metadata/name")?.as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(names.contains(&env.namespace.as_str()), "{names:?}");
    assert!(names.contains(&"default"), "{names:?}");

    // Two kinds in one get: a List of both.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let waiting = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waiting"},
        "spec": {"nodeSelector": {"no": "node"}, "containers": [{"name": "main", "image": "busybox"}]}});
    k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        &write_json(dir.path(), "waiting.json", &waiting),
    ]);
    let both: Value = serde_json::from_str(&k.ok(&["get", "nodes,pods", "-o", "json"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(both["kind"], "List");
    assert!(
        both["items"].as_array().is_some_and(|items| items
            .iter()
            .any(|i| i["kind"] == "Pod" && i["metadata"]["name"] == "waiting")),
        "{both}"
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "labels": {"app": "demo"}}, "data": {"level": "1"}});
    let file = write_json(dir.path(), "cm.json", &cm);
    assert!(
        k.ok(&["apply", "--validate=false", "-f", &file])
            .contains("created")
    );
    cm["data"]["level"] = json!("2");
    let file = write_json(dir.path(), "cm.json", &cm);
    assert!(
        k.ok(&["apply", "--validate=false", "-f", &file])
            .contains("configured")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.level}"
        ]),
        "2"
    );
    cm["data"]["level"] = json!("3");
    let file = write_json(dir.path(), "cm.json", &cm);
    assert!(
        k.ok(&["apply", "--validate=false", "--server-side", "-f", &file])
            .contains("serverside-applied")
    );
    assert_eq!(
        k.ok(&["get", "cm", "-l", "app=demo", "-o", "name"]).trim(),
        "configmap/settings"
    );

    // A selector that does not parse: the apiserver's 400, and kubectl fails.
    let bad = k.run(&["get", "cm", "-l", "app in (demo"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("BadRequest"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    assert!(
        k.ok(&["delete", "configmap", "settings"])
            .contains("deleted")
    );
    let gone = k.run(&["get", "configmap", "settings"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));

    // Deleting the namespace takes what is in it.
    k.ok(&[
        "create",
        "--validate=false",
        "-f",
        &write_json(
            dir.path(),
            "other.json",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inside"}}),
        ),
    ]);
    let ns = env.namespace.clone();
    k.ok(&["delete", "namespace", &ns, "--wait=true", "--timeout=60s"]);
    let after = k.run(&["get", "namespace", &ns]);
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}

/// Without `--validate=false`, kubectl reads the OpenAPI v3 documents, learns that the server
/// validates fields, and asks it to (`fieldValidation=Strict`): a known manifest applies, one
/// with a misspelt field is refused by the server, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_validates_fields_on_the_server_as_against_a_cluster() {
    if !have_kubectl() {
        return;
    }
    let env = Env::new().await;
    let k = Kubectl::new(&env);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "valid"}, "data": {"a": "1"}});
    assert!(
        k.ok(&["apply", "-f", &write_json(dir.path(), "good.json", &good)])
            .contains("created")
    );
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typo"}, "dataa": {"a": "1"}});
    let refused = k.run(&["apply", "-f", &write_json(dir.path(), "bad.json", &bad)]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a misspelt field was accepted");
    assert!(
        said.contains("unknown field") && said.contains("dataa"),
        "{said}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_a_change_as_it_happens() {
    if !have_kubectl() {
        return;
    }
    let env = Env::new().await;
    let k = Kubectl::new(&env);
    let mut child = k
        .command(&["get", "pods", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Give the watch a moment to start, then make a change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "seen"}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
            if lines.iter().any(|l| l == "pod/seen") {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l == "pod/seen"),
        "the watch showed {lines:?}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_scale_cordon_and_a_drain_held_by_a_budget_until_it_allows() {
    if !have_kubectl() {
        return;
    }
    let env = Env::new().await;
    let Some(s) = env.standin("apply_scale_cordon_and_drain") else {
        return env.finish().await;
    };
    let node = format!("node-{}", &env.namespace[2..]);
    s.cluster()
        .add_node(&onmemos_kube_standin::NodeSpec::new(&node))
        .unwrap_or_else(|e| panic!("{e}"));
    let k = Kubectl::new(&env);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                "spec": { "terminationGracePeriodSeconds": 1,
                    "containers": [{ "name": "main", "image": "busybox", "command": ["sleep", "3600"] }] } }
        }
    });
    let file = write_json(dir.path(), "deploy.json", &deployment);
    assert!(
        k.ok(&["apply", "--validate=false", "-f", &file])
            .contains("created")
    );
    let ready = |n: usize| {
        let k = &k;
        move || {
            let out = k.ok(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}",
            ]);
            out.lines().filter(|l| *l == "Running").count() == n
        }
    };
    wait_blocking("two running pods", ready(2));
    k.ok(&["scale", "deployment", "web", "--replicas=3"]);
    wait_blocking("three running pods", ready(3));
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );

    // A budget that allows no disruption, and a drain it holds.
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}}});
    k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        &write_json(dir.path(), "pdb.json", &pdb),
    ]);
    wait_blocking("the budget observed", || {
        k.ok(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.currentHealthy}/{.status.disruptionsAllowed}",
        ]) == "3/0"
    });
    assert!(k.ok(&["cordon", &node]).contains("cordoned"));
    assert_eq!(
        k.ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]),
        "true"
    );
    let mut drain = k
        .command(&[
            "drain",
            &node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        drain.try_wait().ok().flatten().is_none(),
        "the drain finished while the budget allowed nothing"
    );
    assert_eq!(
        k.ok(&["get", "pods", "-l", "app=web", "-o", "name"])
            .lines()
            .count(),
        3,
        "nothing was evicted"
    );
    // The budget relents: the drain completes.
    k.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        "{\"spec\":{\"minAvailable\":0}}",
    ]);
    let out =
        tokio::task::block_in_place(|| drain.wait_with_output()).unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "drain failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("drained"), "{stdout}");
    let left = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector",
        &format!("spec.nodeName={node}"),
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "pods left on the drained node");
    env.finish().await;
}

/// Polls `check` (which may run kubectl) for up to 60 s.
fn wait_blocking(what: &str, check: impl Fn() -> bool) {
    tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(
                std::time::Instant::now() < deadline,
                "waited 60 s for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_exit_codes_stdin_and_a_terminal() {
    if !have_kubectl() {
        return;
    }
    let env = Env::new().await;
    let Some(s) = env.standin("kubectl exec") else {
        return env.finish().await;
    };
    let node = format!("node-{}", &env.namespace[2..]);
    s.cluster()
        .add_node(&onmemos_kube_standin::NodeSpec::new(&node))
        .unwrap_or_else(|e| panic!("{e}"));
    let k = Kubectl::new(&env);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box"},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}});
    k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        &write_json(dir.path(), "pod.json", &pod),
    ]);
    k.ok(&["wait", "--for=condition=Ready", "pod/box", "--timeout=60s"]);

    // The command's exit code becomes kubectl's, as with a cluster.
    let out = k.run(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 7",
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "stdout {:?} stderr {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));

    // Logs: the container's output, whole or its tail.
    let talker = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker"},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo one; echo two; exec sleep 3600"]}]}});
    k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        &write_json(dir.path(), "talker.json", &talker),
    ]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/talker",
        "--timeout=60s",
    ]);
    wait_blocking("the talker's output", || {
        k.ok(&["logs", "talker"]) == "one\ntwo\n"
    });
    assert_eq!(k.ok(&["logs", "talker", "--tail=1"]), "two\n");

    // `kubectl top` reads the metrics API: the container's real resident memory.
    let top = k.ok(&["top", "pod", "box", "--no-headers"]);
    assert!(top.starts_with("box") && top.contains("Mi"), "{top:?}");
    let nodes = k.ok(&["top", "node", &node, "--no-headers"]);
    assert!(nodes.starts_with(&node), "{nodes:?}");

    // Standard input.
    let mut child = k
        .command(&["exec", "-i", "box", "--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        stdin
            .write_all(b"quiet\n")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out =
        tokio::task::block_in_place(|| child.wait_with_output()).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "QUIET\n");

    // `exec -it` under a real terminal (util-linux `script` gives kubectl one).
    let kubeconfig = env.kubeconfig.display().to_string();
    let cache = k.cache.path().display().to_string();
    let inner = format!(
        "kubectl --kubeconfig {kubeconfig} --cache-dir {cache} -n {} exec -it box -- sh -c 'tty; exit 4'",
        env.namespace
    );
    let out = tokio::task::block_in_place(|| {
        Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::null())
            .output()
    })
    .unwrap_or_else(|e| panic!("script: {e}"));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("/dev/pts/"),
        "the command had no terminal: {shown:?}"
    );
    assert_eq!(out.status.code(), Some(4), "{shown:?}");
    env.finish().await;
}
