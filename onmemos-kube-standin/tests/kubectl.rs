//! The real `kubectl` against the stand-in (or a real cluster, with `KUBECONFIG`): get,
//! watch, apply (client-side and server-side), selectors, delete, and namespace deletion.
//! `kubectl` on the PATH is required in CI; elsewhere its absence skips these, saying so.
#![cfg(feature = "kube")]

mod common;

use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Env;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// Whether kubectl can run here (it must in CI).
fn have_kubectl() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl must be on the PATH in CI: the kubectl tests cannot be skipped there"
        );
        eprintln!("SKIPPED: no kubectl on the PATH");
    }
    found
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_a_change_as_it_happens() {
    if !have_kubectl() {
        return;
    }
    let env = Env::new().await;
    let k = Kubectl::new(&env);
    let mut child = k
        .command(&["get", "configmaps", "--watch", "-o", "name"])
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
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "seen"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    cms.create(&PostParams::default(), &cm)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
            if lines.iter().any(|l| l == "configmap/seen") {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l == "configmap/seen"),
        "the watch showed {lines:?}"
    );
    env.finish().await;
}
