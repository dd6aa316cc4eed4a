//! kube-rs against the stand-in (or a real cluster, with `KUBECONFIG`): CRUD, conflicts,
//! selectors, pagination, patches, dry runs, bad input, namespaces and garbage collection,
//! and `kube::runtime::watcher` through a relist after `410 Expired`.
#![cfg(feature = "kube")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Env;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use onmemos_kube_standin::StandIn;
use serde_json::json;

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": name },
        "data": { "k": "v" }
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    cm.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    );
    cm
}

/// The code and reason of a kube API error.
fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn objects_are_created_read_replaced_and_deleted_with_the_apiservers_errors() {
    let env = Env::new().await;
    let client = env.client.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &env.namespace);
    let created = cms
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    let rv: u64 = meta
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion: {meta:?}"));

    // The same name again: 409 AlreadyExists.
    let again = cms
        .create(&PostParams::default(), &config_map("a", &[]))
        .await;
    assert_eq!(api_error(again), (409, "AlreadyExists".into()));

    // A replace from the current version wins and moves the version on; one from the old
    // version then conflicts.
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_owned(), "w".to_owned())].into());
    let replaced = cms
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap_or_else(|e| panic!("replace: {e}"));
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(rv2 > rv, "{rv2} after {rv}");
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    let stale = cms.replace("a", &PostParams::default(), &created).await;
    match stale {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
            assert!(
                status.message.contains("the object has been modified"),
                "{}",
                status.message
            );
        }
        other => panic!("a stale replace was not a conflict: {other:?}"),
    }

    // Dry runs answer and store nothing.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    cms.create(&dry, &config_map("dry", &[]))
        .await
        .unwrap_or_else(|e| panic!("dry create: {e}"));
    assert_eq!(api_error(cms.get("dry").await), (404, "NotFound".into()));

    cms.delete("a", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(api_error(cms.get("a").await), (404, "NotFound".into()));
    assert_eq!(
        api_error(cms.delete("a", &DeleteParams::default()).await),
        (404, "NotFound".into())
    );

    // In a namespace that does not exist: 404 naming the namespace.
    let nowhere: Api<ConfigMap> = Api::namespaced(client, "nowhere");
    match nowhere
        .create(&PostParams::default(), &config_map("x", &[]))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.message, "namespaces \"nowhere\" not found");
        }
        other => panic!("{other:?}"),
    }
    env.finish().await;
}

#[tokio::test]
async fn bad_names_bodies_and_selectors_are_refused_and_nothing_is_stored() {
    let env = Env::new().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    match cms
        .create(&PostParams::default(), &config_map("Not_A_Name", &[]))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert!(
                status.message.starts_with(
                    "ConfigMap \"Not_A_Name\" is invalid: metadata.name: Invalid value"
                ),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }
    let bad = cms.list(&ListParams::default().labels("app in (web")).await;
    assert_eq!(api_error(bad).0, 400);
    let bad = cms
        .list(&ListParams::default().fields("spec.unknown=x"))
        .await;
    assert_eq!(api_error(bad).0, 400);

    // Malformed JSON over raw HTTP.
    if let Some(s) = env.standin("malformed JSON over raw HTTP") {
        let path = format!("/api/v1/namespaces/{}/configmaps", env.namespace);
        let http = reqwest_like(s, &path, b"{not json").await;
        assert_eq!(http.0, 400, "{}", http.1);
        assert!(http.1.contains("\"reason\":\"BadRequest\""), "{}", http.1);
    }
    // Nothing was stored (a real cluster puts its own kube-root-ca.crt in every namespace).
    let stored = cms.list(&ListParams::default()).await.map(|l| {
        l.items
            .into_iter()
            .filter(|c| c.metadata.name.as_deref() != Some("kube-root-ca.crt"))
            .count()
    });
    assert_eq!(stored.ok(), Some(0));
    env.finish().await;
}

/// POSTs `body` as JSON to `path`; the status code and the body.
async fn reqwest_like(s: &StandIn, path: &str, body: &[u8]) -> (u16, String) {
    post(s, path, "application/json", body).await
}

/// POSTs `body` as `content_type` to `path`; the status code and the whole answer.
async fn post(s: &StandIn, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(s.addr())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    conn.write_all(body).await.unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    conn.read_to_string(&mut out)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

#[tokio::test]
async fn lists_select_by_label_and_field_and_page_with_continue_tokens() {
    let env = Env::new().await;
    let client = env.client.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &env.namespace);
    for i in 0..7 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        cms.create(
            &PostParams::default(),
            &config_map(&format!("cm-{i}"), &[("app", "web"), ("tier", tier)]),
        )
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    let front = cms
        .list(&ListParams::default().labels("app=web,tier in (front)"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(front), ["cm-0", "cm-2", "cm-4", "cm-6"]);
    let not_back = cms
        .list(&ListParams::default().labels("tier!=back,!missing"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(not_back).len(), 4);
    let one = cms
        .list(&ListParams::default().fields("metadata.name=cm-3"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(one), ["cm-3"]);

    let mut seen = Vec::new();
    let mut params = ListParams::default().labels("app=web").limit(3);
    let mut pages = 0;
    loop {
        let page = cms.list(&params).await.unwrap_or_else(|e| panic!("{e}"));
        pages += 1;
        let token = page.metadata.continue_.clone();
        seen.extend(names(page));
        match token.filter(|t| !t.is_empty()) {
            Some(t) => {
                params = ListParams::default()
                    .labels("app=web")
                    .limit(3)
                    .continue_token(&t)
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages in name order, without repeats");
    // Across every namespace, the same seven.
    let all: Api<ConfigMap> = Api::all(client);
    let everywhere = all
        .list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|c| c.metadata.namespace.as_deref() == Some(env.namespace.as_str()))
                .count()
        });
    assert_eq!(everywhere.ok(), Some(7));
    env.finish().await;
}

#[tokio::test]
async fn every_patch_type_and_server_side_apply() {
    let env = Env::new().await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.namespace);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "p", "labels": { "a": "1" } },
        "spec": { "containers": [
            { "name": "main", "image": "busybox", "env": [{ "name": "A", "value": "1" }] },
            { "name": "side", "image": "busybox" }
        ], "tolerations": [{ "key": "t1", "operator": "Exists" }] }
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
    let pp = PatchParams::default();

    let merged = pods
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({ "metadata": { "labels": { "b": "2", "a": null } } })),
        )
        .await
        .unwrap_or_else(|e| panic!("merge: {e}"));
    let labels = merged.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("b").map(String::as_str), Some("2"));
    assert!(!labels.contains_key("a"));

    let json_patch: json_patch_ops::Patch = serde_json::from_value(json!([
        { "op": "add", "path": "/metadata/annotations", "value": { "x": "y" } },
        { "op": "replace", "path": "/spec/containers/1/image", "value": "alpine" }
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    let patched = pods
        .patch("p", &pp, &Patch::Json::<()>(json_patch))
        .await
        .unwrap_or_else(|e| panic!("json: {e}"));
    assert_eq!(
        patched.spec.as_ref().map(|s| s.containers[1].image.clone()),
        Some(Some("alpine".into()))
    );

    let strategic = pods
        .patch(
            "p",
            &pp,
            &Patch::Strategic(json!({ "spec": {
                "containers": [{ "name": "main", "env": [{ "name": "B", "value": "2" }] }],
                "tolerations": [{ "key": "t2", "operator": "Exists" }]
            } })),
        )
        .await
        .unwrap_or_else(|e| panic!("strategic: {e}"));
    let spec = strategic.spec.unwrap_or_default();
    assert_eq!(spec.containers.len(), 2, "containers merge by name");
    assert_eq!(
        spec.containers[0].env.as_ref().map(Vec::len),
        Some(2),
        "env merges by name"
    );
    assert_eq!(
        spec.tolerations.as_ref().map(Vec::len),
        Some(1),
        "tolerations are replaced"
    );

    // Server-side apply: a field manager is required; a missing object is created.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let applied = config_map("applied", &[("by", "apply")]);
    let refused = cms
        .patch("applied", &PatchParams::default(), &Patch::Apply(&applied))
        .await;
    assert_eq!(api_error(refused).0, 400);
    let ssa = PatchParams::apply("tests").force();
    let made = cms
        .patch("applied", &ssa, &Patch::Apply(&applied))
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    assert!(made.metadata.uid.is_some());
    let mut again = applied.clone();
    again.data = Some([("k".to_owned(), "changed".to_owned())].into());
    let updated = cms
        .patch("applied", &ssa, &Patch::Apply(&again))
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    assert_eq!(updated.metadata.uid, made.metadata.uid);
    assert_eq!(
        updated.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("changed")
    );
    env.finish().await;
}

/// kube's `Patch::Json` takes a `json_patch::Patch`.
mod json_patch_ops {
    pub use json_patch::Patch;
}

type Events =
    futures::stream::BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>;

/// The watcher's next event (within 20 s).
async fn next(events: &mut Events) -> watcher::Event<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(20), events.try_next())
        .await
        .unwrap_or_else(|_| panic!("no watch event in 20 s"))
        .unwrap_or_else(|e| panic!("watcher: {e}"))
        .unwrap_or_else(|| panic!("the watcher ended"))
}

#[tokio::test]
async fn the_watcher_relists_after_410_expired() {
    let env = Env::new().await;
    let Some(s) = env.standin("the_watcher_relists_after_410_expired") else {
        return env.finish().await;
    };
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    cms.create(&PostParams::default(), &config_map("first", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut events: Events = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut init_done = 0;
    let mut applied = Vec::new();
    // The initial list.
    loop {
        match next(&mut events).await {
            watcher::Event::InitDone => {
                init_done += 1;
                break;
            }
            watcher::Event::InitApply(cm) => applied.push(cm.metadata.name.unwrap_or_default()),
            _ => {}
        }
    }
    assert_eq!(applied, ["first"]);
    // A change arrives as it happens.
    cms.create(&PostParams::default(), &config_map("second", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    loop {
        if let watcher::Event::Apply(cm) = next(&mut events).await {
            assert_eq!(cm.metadata.name.as_deref(), Some("second"));
            break;
        }
    }
    // Changes the watcher does not see (another namespace) move the cluster on; the server
    // forgets its history and drops the watch: the watcher's resume from the version it last
    // saw gets 410 Expired, and it lists again.
    let other = Env::new_namespace(&env.client).await;
    let elsewhere: Api<ConfigMap> = Api::namespaced(env.client.clone(), &other);
    elsewhere
        .create(&PostParams::default(), &config_map("unseen", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cms.create(&PostParams::default(), &config_map("third", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    loop {
        if let watcher::Event::Apply(cm) = next(&mut events).await {
            assert_eq!(cm.metadata.name.as_deref(), Some("third"));
            break;
        }
    }
    elsewhere
        .create(&PostParams::default(), &config_map("unseen-2", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.cluster().compact();
    s.cluster().end_watches();
    // The watcher reports the 410, then relists on its next poll.
    match tokio::time::timeout(Duration::from_secs(20), events.try_next()).await {
        Ok(Err(e)) => assert!(e.to_string().contains("Expired"), "{e}"),
        other => panic!("the resume did not get 410 Expired: {other:?}"),
    }
    let mut relisted = Vec::new();
    loop {
        match next(&mut events).await {
            watcher::Event::Init => relisted.clear(),
            watcher::Event::InitApply(cm) => relisted.push(cm.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => {
                init_done += 1;
                break;
            }
            _ => {}
        }
    }
    assert_eq!(init_done, 2, "the watcher relisted");
    assert_eq!(relisted, ["first", "second", "third"]);
    env.finish().await;
}

#[tokio::test]
async fn a_deleted_namespace_goes_with_everything_in_it_and_dependents_go_with_their_owner() {
    let env = Env::new().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let owner = cms
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut dependent = config_map("dependent", &[]);
    dependent.metadata.owner_references = Some(vec![
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.clone().unwrap_or_default()
        }))
        .unwrap_or_else(|e| panic!("{e}")),
    ]);
    cms.create(&PostParams::default(), &dependent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cms.create(&PostParams::default(), &config_map("bystander", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cms.delete("owner", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("the dependent to be collected", || async {
        matches!(cms.get_opt("dependent").await, Ok(None))
    })
    .await;
    assert!(
        matches!(cms.get_opt("bystander").await, Ok(Some(_))),
        "only dependents go"
    );

    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let deleting = namespaces
        .delete(&env.namespace, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    if let either::Either::Left(ns) = deleting {
        assert_eq!(
            ns.status.and_then(|s| s.phase).as_deref(),
            Some("Terminating")
        );
    }
    eventually("the namespace to go", || async {
        matches!(namespaces.get_opt(&env.namespace).await, Ok(None))
    })
    .await;
    assert_eq!(api_error(cms.get("bystander").await).0, 404);
}

/// Waits up to 60 s for `check` to hold.
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

#[tokio::test]
async fn injected_faults_are_retried_by_kubes_default_client_and_reach_one_without_retries() {
    use onmemos_kube_standin::{Fault, FaultKind};
    let env = Env::new().await;
    let Some(s) = env.standin("injected faults") else {
        return env.finish().await;
    };
    let path = format!("/api/v1/namespaces/{}/configmaps", env.namespace);
    let fault = |code, times| Fault {
        method: Some(http::Method::POST),
        path_prefix: path.clone(),
        times,
        kind: FaultKind::Status(code),
    };
    // kube retries 503 and 429 by default: two failures, then the create lands.
    s.cluster().inject(fault(503, 1));
    s.cluster().inject(fault(429, 1));
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    cms.create(&PostParams::default(), &config_map("after-faults", &[]))
        .await
        .unwrap_or_else(|e| panic!("the retried create failed: {e}"));
    // Without retries the fault is the answer, with the apiserver's reason.
    s.cluster().inject(fault(503, 1));
    let strict: Api<ConfigMap> =
        Api::namespaced(env.client_without_retries().await, &env.namespace);
    assert_eq!(
        api_error(
            strict
                .create(&PostParams::default(), &config_map("x", &[]))
                .await
        ),
        (503, "ServiceUnavailable".into())
    );
    s.cluster().inject(fault(500, 1));
    assert_eq!(
        api_error(
            strict
                .create(&PostParams::default(), &config_map("x", &[]))
                .await
        ),
        (500, "InternalError".into())
    );
    // A stall delays the answer.
    s.cluster().inject(Fault {
        method: None,
        path_prefix: path.clone(),
        times: 1,
        kind: FaultKind::Stall(Duration::from_millis(800)),
    });
    let started = tokio::time::Instant::now();
    cms.list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(started.elapsed() >= Duration::from_millis(800));
    env.finish().await;
}

#[tokio::test]
async fn a_watch_with_a_selector_sees_objects_enter_and_leave_it() {
    use kube::api::{WatchEvent, WatchParams};
    let env = Env::new().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    cms.create(
        &PostParams::default(),
        &config_map("moving", &[("tier", "back")]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let version = cms
        .list(&ListParams::default())
        .await
        .ok()
        .and_then(|l| l.metadata.resource_version)
        .unwrap_or_default();
    let mut events = cms
        .watch(
            &WatchParams::default().labels("tier=front").timeout(30),
            &version,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .boxed();
    let relabel = |tier: &'static str| {
        let cms = cms.clone();
        async move {
            cms.patch(
                "moving",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    let mut seen = Vec::new();
    // Into the selection, out of it, and back.
    for tier in ["front", "back", "front"] {
        relabel(tier).await;
        let event = tokio::time::timeout(Duration::from_secs(20), events.try_next())
            .await
            .unwrap_or_else(|_| panic!("no event"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the watch ended"));
        seen.push(match event {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(seen, ["ADDED", "DELETED", "ADDED"]);
    env.finish().await;
}

#[tokio::test]
async fn strict_field_validation_refuses_unknown_fields_and_stores_nothing() {
    let env = Env::new().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    if let Some(s) = env.standin("raw strict create") {
        let body = br#"{"metadata":{"name":"strict","bogus":1},"data":{"k":"v"},"extra":2}"#;
        let path = format!(
            "/api/v1/namespaces/{}/configmaps?fieldValidation=Strict",
            env.namespace
        );
        let (code, answer) = reqwest_like(s, &path, body).await;
        assert_eq!(code, 400, "{answer}");
        assert!(answer.contains(r#"strict decoding error: unknown field \"extra\", unknown field \"metadata.bogus\""#), "{answer}");
        let warn = format!(
            "/api/v1/namespaces/{}/configmaps?fieldValidation=Warn",
            env.namespace
        );
        let (code, answer) = reqwest_like(s, &warn, body).await;
        assert_eq!(code, 201, "{answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("warning: 299 - \"unknown field"),
            "{answer}"
        );
        cms.delete("strict", &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    cms.create(&PostParams::default(), &config_map("patched", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let strict = PatchParams::default().validation_strict();
    let refused = cms
        .patch("patched", &strict, &Patch::Merge(json!({ "extra": true })))
        .await;
    assert_eq!(api_error(refused).0, 400);
    let kept = cms.get("patched").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kept.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("v"),
        "the refused patch changed nothing"
    );
    env.finish().await;
}

#[tokio::test]
async fn yaml_bodies_are_read_and_malformed_ones_refused() {
    let env = Env::new().await;
    let Some(s) = env.standin("raw YAML bodies") else {
        return env.finish().await;
    };
    let path = format!("/api/v1/namespaces/{}/configmaps", env.namespace);
    let yaml =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  level: \"3\"\n";
    let (code, answer) = post(s, &path, "application/yaml", yaml).await;
    assert_eq!(code, 201, "{answer}");
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let stored = cms.get("from-yaml").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stored.data.and_then(|d| d.get("level").cloned()).as_deref(),
        Some("3")
    );
    let (code, answer) = post(s, &path, "application/yaml", b"metadata: {name: [broken\n").await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("error converting YAML to JSON"), "{answer}");
    env.finish().await;
}
