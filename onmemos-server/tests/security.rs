//! Reproducers of what an attacker tried, kept as tests: each failed before its fix.
//!
//! Sessions are untrusted code: a session plants links, FIFOs and other files in its
//! workspace's `files` directory, and its owner then uses every file route and deletes the
//! workspace. Nothing of another tenant, nor of the server, may be read, written, listed,
//! counted or deleted, with the sandbox and without it.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::Reply;
use onmemos_backends::compute::LocalCompute;
use onmemos_backends::db::SqlDatabase;
use onmemos_backends::storage::LocalStorage;
use onmemos_core::Engine;
use onmemos_core::ports::ComputeProvider;
use serde_json::{Value, json};

/// A server whose sessions run on `compute`, with its database and store in `dir`.
async fn api(dir: &std::path::Path, compute: LocalCompute) -> common::TestApi {
    api_with(dir, compute, onmemos_core::EngineConfig::default()).await
}

async fn api_with(
    dir: &std::path::Path,
    compute: LocalCompute,
    config: onmemos_core::EngineConfig,
) -> common::TestApi {
    let db = SqlDatabase::open(&format!("sqlite://{}", dir.join("onmemos.db").display()))
        .await
        .unwrap_or_else(|e| panic!("db: {e}"));
    let storage =
        LocalStorage::open(&dir.join("storage")).unwrap_or_else(|e| panic!("storage: {e}"));
    let engine = Engine::builder(Arc::new(db))
        .with_compute(Arc::new(compute))
        .with_storage(Arc::new(storage))
        .with_config(config)
        .build()
        .await
        .unwrap_or_else(|e| panic!("engine: {e}"));
    common::TestApi::over(engine).await
}

async fn raw(api: &common::TestApi, method: Method, path: &str, key: &str, body: &[u8]) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(body.to_vec()))
        .unwrap_or_else(|e| panic!("request: {e}"));
    api.send(req).await
}

/// A funded member with a workspace: their key and the workspace's id.
async fn tenant(api: &common::TestApi, email: &str) -> (String, String) {
    let key = common::funded_member(&api.engine, email, 50_000_000).await;
    let ws = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&key),
            Some(json!({"name": "lab"})),
        )
        .await;
    assert_eq!(ws.status, StatusCode::CREATED, "{}", ws.text);
    (key, ws.body["id"].as_str().unwrap_or_default().to_owned())
}

/// Starts a session of the `python` template in `ws`: its id.
async fn session(api: &common::TestApi, key: &str, ws: &str) -> String {
    let session = api
        .call(
            Method::POST,
            "/v1/sessions",
            Some(key),
            Some(json!({"workspace_id": ws, "template": "python"})),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    session.body["id"].as_str().unwrap_or_default().to_owned()
}

async fn exec(api: &common::TestApi, key: &str, session: &str, script: &str) -> Value {
    let r = api
        .call(
            Method::POST,
            &format!("/v1/sessions/{session}/exec"),
            Some(key),
            Some(json!({"command": ["sh", "-c", script], "timeout_secs": 20})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "exec: {}", r.text);
    r.body
}

async fn planted_links_reach_nothing(compute: LocalCompute) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let api = api(dir.path(), compute).await;
    let (bob, bob_ws) = tenant(&api, "bob@example.com").await;
    let (eve, eve_ws) = tenant(&api, "eve@example.com").await;
    let put = raw(
        &api,
        Method::PUT,
        &format!("/v1/workspaces/{bob_ws}/files/secret.txt"),
        &bob,
        b"bob's secret",
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);

    let sid = session(&api, &eve, &eve_ws).await;
    let db = dir.path().join("onmemos.db").display().to_string();
    // Everything the session can make in its files directory that is not a regular file.
    let script = format!(
        "cd files && ln -s ../{bob_ws} victim && ln -s .. all && ln -s {db} db && \
         ln -s /etc/hostname host && mkfifo pipe && mkdir sub && ln -s ../../{bob_ws} sub/through && \
         printf 1234567890 > mine.txt && echo planted"
    );
    let out = exec(&api, &eve, &sid, &script).await;
    assert_eq!(out["stdout"], "planted\n", "{out}");

    let file = |p: &str| format!("/v1/workspaces/{eve_ws}/files/{p}");
    let through_all = format!("all/{bob_ws}/secret.txt");
    for path in [
        "victim/secret.txt",
        through_all.as_str(),
        "db",
        "host",
        "pipe",
        "sub/through/secret.txt",
        "victim",
    ] {
        let got = raw(&api, Method::GET, &file(path), &eve, b"").await;
        got.assert_error(404, "not_found");
        assert!(!got.text.contains("bob's secret"));
        assert!(
            !got.text.contains(&dir.path().display().to_string()),
            "a server path in {}",
            got.text
        );
        let head = raw(&api, Method::HEAD, &file(path), &eve, b"").await;
        assert_eq!(head.status, StatusCode::NOT_FOUND, "HEAD {path}");
    }
    for path in [
        "victim/planted.txt",
        format!("all/{bob_ws}/planted.txt").as_str(),
        "sub/through/planted.txt",
    ] {
        let put = raw(&api, Method::PUT, &file(path), &eve, b"overwritten").await;
        put.assert_error(409, "conflict");
        let upload = api
            .call(
                Method::POST,
                &format!("/v1/workspaces/{eve_ws}/uploads"),
                Some(&eve),
                Some(json!({"path": path, "size": 1})),
            )
            .await;
        assert_eq!(upload.status, StatusCode::CREATED, "{}", upload.text);
        let id = upload.body["id"].as_str().unwrap_or_default();
        let part = raw(
            &api,
            Method::PUT,
            &format!("/v1/workspaces/{eve_ws}/uploads/{id}/parts/0"),
            &eve,
            b"x",
        )
        .await;
        assert!(part.status.is_success(), "{}", part.text);
        let done = api
            .call(
                Method::POST,
                &format!("/v1/workspaces/{eve_ws}/uploads/{id}/complete"),
                Some(&eve),
                Some(json!({})),
            )
            .await;
        done.assert_error(409, "conflict");
    }
    // A put at a link's own name replaces the link, not the database it pointed at.
    let put = raw(&api, Method::PUT, &file("db"), &eve, b"mine").await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);
    for path in ["victim/secret.txt", "sub/through/secret.txt"] {
        let del = raw(&api, Method::DELETE, &file(path), &eve, b"").await;
        assert!(
            del.status.is_success() || del.status == StatusCode::NOT_FOUND,
            "{}",
            del.text
        );
    }
    let listed = api
        .call(
            Method::GET,
            &format!("/v1/workspaces/{eve_ws}/files"),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let paths: Vec<&str> = listed.body["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|o| o["path"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(paths, ["db", "mine.txt"], "{}", listed.text);
    let usage = api
        .call(
            Method::GET,
            &format!("/v1/workspaces/{eve_ws}/storage"),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(usage.body["bytes"], 4 + 10, "{}", usage.text);

    let stop = api
        .call(
            Method::POST,
            &format!("/v1/sessions/{sid}/stop"),
            Some(&eve),
            Some(json!({})),
        )
        .await;
    assert_eq!(stop.status, StatusCode::OK, "{}", stop.text);
    let deleted = api
        .call(
            Method::DELETE,
            &format!("/v1/workspaces/{eve_ws}"),
            Some(&eve),
            None,
        )
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);

    // Bob's files and the server's database are untouched.
    let got = raw(
        &api,
        Method::GET,
        &format!("/v1/workspaces/{bob_ws}/files/secret.txt"),
        &bob,
        b"",
    )
    .await;
    assert_eq!(
        (got.status, got.text.as_str()),
        (StatusCode::OK, "bob's secret")
    );
    let bob_list = api
        .call(
            Method::GET,
            &format!("/v1/workspaces/{bob_ws}/files"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        bob_list.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        bob_list.text
    );
    let db_bytes = std::fs::metadata(dir.path().join("onmemos.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(db_bytes > 4, "the database was replaced");
    assert!(std::fs::read("/etc/hostname").is_ok_and(|h| !h.is_empty()));
}

#[tokio::test]
async fn planted_links_reach_nothing_without_the_sandbox() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    planted_links_reach_nothing(LocalCompute::unsandboxed(root.path())).await;
}

#[tokio::test]
async fn planted_links_reach_nothing_in_the_sandbox() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let compute = LocalCompute::new(root.path());
    assert!(
        compute.capabilities().sandboxed,
        "bubblewrap is needed for this test (scripts/test.sh installs it)"
    );
    planted_links_reach_nothing(compute).await;
}

/// Bytes a session writes straight into its files pass no upload's quota check: the next
/// monitor pass stops the session (`storage_quota`), and the API refuses further uploads
/// because usage counts what is really stored.
#[tokio::test]
async fn a_session_writing_past_the_quota_is_stopped_and_uploads_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut config = onmemos_core::EngineConfig::default();
    config.storage.quota_bytes = 10_000;
    // Every pass ticks the session: it is due 10 ms after its last tick.
    config.sessions.check_interval_ms = 10;
    let api = api_with(dir.path(), LocalCompute::unsandboxed(root.path()), config).await;
    let (eve, ws) = tenant(&api, "eve@example.com").await;
    let sid = session(&api, &eve, &ws).await;
    // Another tenant's session, billed in the same batch, stays within its own quota.
    let (frank, frank_ws) = tenant(&api, "frank@example.com").await;
    let frank_sid = session(&api, &frank, &frank_ws).await;
    let out = exec(
        &api,
        &frank,
        &frank_sid,
        "head -c 9000 /dev/zero > files/a && echo ok",
    )
    .await;
    assert_eq!(out["stdout"], "ok\n", "{out}");
    // Within the quota, the session runs on through a pass.
    let out = exec(
        &api,
        &eve,
        &sid,
        "head -c 4000 /dev/zero > files/a && echo ok",
    )
    .await;
    assert_eq!(out["stdout"], "ok\n", "{out}");
    let report = api
        .engine
        .monitor()
        .run_once()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.stopped.is_empty(), "{report:?}");

    let out = exec(
        &api,
        &eve,
        &sid,
        "mkdir -p files/deep/er && head -c 9000 /dev/zero > files/deep/er/b && echo ok",
    )
    .await;
    assert_eq!(out["stdout"], "ok\n", "{out}");
    let usage = api
        .call(
            Method::GET,
            &format!("/v1/workspaces/{ws}/storage"),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(usage.body["bytes"], 13_000, "{}", usage.text);
    let put = raw(
        &api,
        Method::PUT,
        &format!("/v1/workspaces/{ws}/files/c"),
        &eve,
        b"x",
    )
    .await;
    put.assert_error(413, "quota_exceeded");

    let report = api
        .engine
        .monitor()
        .run_once()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reasons: Vec<(String, &str)> = report
        .stopped
        .iter()
        .map(|(id, r)| (id.to_string(), r.as_str()))
        .collect();
    assert_eq!(reasons, [(sid.clone(), "storage_quota")], "{report:?}");
    let other = api
        .call(
            Method::GET,
            &format!("/v1/sessions/{frank_sid}"),
            Some(&frank),
            None,
        )
        .await;
    assert_eq!(other.body["status"], "running", "{}", other.text);
    let got = api
        .call(
            Method::GET,
            &format!("/v1/sessions/{sid}"),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(got.body["status"], "stopped", "{}", got.text);
    assert_eq!(got.body["stop_reason"], "storage_quota", "{}", got.text);
}

/// Serves a router over a fresh engine with `config`, through [`onmemos_server::serve`].
async fn served(config: onmemos_server::ServerConfig) -> (std::net::SocketAddr, common::TestApi) {
    let api =
        common::TestApi::with(Arc::new(onmemos_core::clock::SystemClock), config.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let app = api.router.clone();
    tokio::spawn(async move {
        let _ = onmemos_server::serve(listener, app, &config, std::future::pending()).await;
    });
    (addr, api)
}

/// Reads until the server closes the connection (or the hang guard fires); what it sent.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut got),
    )
    .await;
    read.ok().and_then(Result::ok).map(|_| got)
}

/// Idle and slow-header connections are closed at the header deadline, and never hold the
/// connection slots against everyone else: 40 idle sockets against a cap of 8, then a health
/// check gets its answer.
#[tokio::test]
async fn idle_and_slow_connections_cannot_exhaust_the_server() {
    use tokio::io::AsyncWriteExt;
    let config = onmemos_server::ServerConfig {
        header_timeout_secs: 1,
        max_connections: 8,
        ..Default::default()
    };
    let (addr, _api) = served(config).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}")),
        );
    }
    // A slow client: a header line, then nothing more.
    let mut slow = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let health = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz never answered: {e}"));
    assert_eq!(health.status().as_u16(), 200);
    for (i, stream) in idle.iter_mut().take(8).enumerate() {
        assert!(
            until_closed(stream).await.is_some(),
            "idle connection {i} was left open"
        );
    }
    let answer = until_closed(&mut slow)
        .await
        .unwrap_or_else(|| panic!("the slow client was left open"));
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "a request with unfinished headers was served"
    );
}

#[tokio::test]
async fn each_key_is_held_to_its_rate_with_retry_after() {
    let config = onmemos_server::ServerConfig {
        rate_limit_per_second: 1,
        rate_limit_burst: 3,
        ..Default::default()
    };
    let api = common::TestApi::with(Arc::new(onmemos_core::clock::SystemClock), config).await;
    let busy = api.member("busy@example.com").await;
    let calm = api.member("calm@example.com").await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let r = api.call(Method::GET, "/v1/me", Some(&busy), None).await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
        }
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    let limited = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    limited.assert_error(429, "rate_limited");
    let retry: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    let other = api.call(Method::GET, "/v1/me", Some(&calm), None).await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "another key is not slowed by the first"
    );
}

#[tokio::test]
async fn two_credentials_in_one_request_are_refused() {
    let api = common::TestApi::new().await;
    let key = api.member("two@example.com").await;
    let both = [
        vec![
            ("authorization", format!("Bearer {key}")),
            ("x-api-key", key.clone()),
        ],
        vec![
            ("authorization", format!("Bearer {key}")),
            ("authorization", format!("Bearer {key}")),
        ],
        vec![("x-api-key", key.clone()), ("x-api-key", key.clone())],
    ];
    for headers in both {
        let mut req = Request::builder().method(Method::GET).uri("/v1/me");
        for (name, value) in &headers {
            req = req.header(*name, value);
        }
        let r = api
            .send(req.body(Body::empty()).unwrap_or_else(|e| panic!("{e}")))
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["field"], "Authorization", "{}", r.text);
    }
}

/// Part slots are not a server-wide prize: a part holds one only once its first bytes have
/// arrived, one tenant holds at most half of them, and a part must then arrive at the minimum
/// rate. Two tenants stalling every way they can leave another tenant's part unhindered.
#[tokio::test]
async fn one_tenant_cannot_hold_every_upload_slot() {
    use futures::StreamExt;
    use onmemos_core::api::CreateUpload;
    let mut config = onmemos_core::EngineConfig::default();
    config.storage.parts_in_memory = 2;
    config.storage.part_min_bytes_per_sec = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let api = api_with(dir.path(), LocalCompute::unsandboxed(root.path()), config).await;
    let engine = api.engine.clone();
    let principal = |key: String| {
        let engine = engine.clone();
        async move {
            engine
                .api_keys()
                .authenticate(&key)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let mut tenants = Vec::new();
    for email in ["eve@example.com", "mallory@example.com", "bob@example.com"] {
        let (key, ws) = tenant(&api, email).await;
        let ws: onmemos_core::id::WorkspaceId = ws.parse().unwrap_or_else(|e| panic!("{e:?}"));
        tenants.push((principal(key).await, ws));
    }
    let start = |who: usize, name: &str| {
        let (p, ws) = tenants[who].clone();
        let engine = engine.clone();
        let request = CreateUpload {
            path: name.to_owned(),
            size: 100,
            content_type: None,
        };
        async move {
            let upload = engine
                .storage()
                .create_upload(&p, ws, &request)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (p, ws, upload.id)
        }
    };
    let stalled = |bytes: usize| -> onmemos_core::ports::storage::ByteStream {
        let first =
            futures::stream::iter((bytes > 0).then(|| Ok(bytes::Bytes::from(vec![1u8; bytes]))));
        first.chain(futures::stream::pending()).boxed()
    };
    let mut stalls = Vec::new();
    // Eve: two parts that send a byte and stall, one that sends nothing; Mallory: nothing.
    for (who, name, bytes) in [(0, "a", 1), (0, "b", 1), (0, "c", 0), (1, "d", 0)] {
        let (p, ws, id) = start(who, name).await;
        let engine = engine.clone();
        let body = stalled(bytes);
        stalls.push(tokio::spawn(async move {
            engine.storage().put_part(&p, ws, id, 0, None, body).await
        }));
    }
    tokio::task::yield_now().await;
    let (p, ws, id) = start(2, "bob.bin").await;
    let body = futures::stream::iter([Ok(bytes::Bytes::from(vec![7u8; 100]))]).boxed();
    let part = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        engine.storage().put_part(&p, ws, id, 0, Some(100), body),
    )
    .await
    .unwrap_or_else(|_| panic!("bob's part waited behind the others' stalled parts"));
    assert_eq!(part.map(|p| p.size).ok(), Some(100));
    // Eve's first stalled part is refused at its deadline, freeing its slot for her next one.
    let first = stalls.remove(0).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first.err().map(|e| e.code().as_str()),
        Some("request_timeout")
    );
    for stall in stalls {
        stall.abort();
    }
}

/// A synchronous exec is bounded by its own `timeout_secs`, not cut at the request timeout
/// (where a retry would run it again), and its command dies with the request.
#[tokio::test]
async fn exec_keeps_its_own_timeout_and_dies_with_its_request() {
    let config = onmemos_server::ServerConfig {
        request_timeout_secs: 1,
        ..Default::default()
    };
    let api = common::TestApi::with(Arc::new(onmemos_core::clock::SystemClock), config).await;
    let (key, ws) = tenant(&api, "slow@example.com").await;
    let sid = session(&api, &key, &ws).await;
    let exec_path = format!("/v1/sessions/{sid}/exec");
    let timed = api
        .call(
            Method::POST,
            &exec_path,
            Some(&key),
            Some(json!({"command": ["sleep", "30"], "timeout_secs": 2})),
        )
        .await;
    assert_eq!(timed.status, StatusCode::OK, "{}", timed.text);
    assert_eq!(
        (
            timed.body["timed_out"].as_bool(),
            timed.body["exit_code"].is_null()
        ),
        (Some(true), true)
    );

    // A request that goes away takes its command with it.
    let script = "echo $$ > files/pid.txt; exec sleep 300";
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(1500),
        api.call(
            Method::POST,
            &exec_path,
            Some(&key),
            Some(json!({"command": ["sh", "-c", script]})),
        ),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the exec answered while its command still ran"
    );
    let pid = raw(
        &api,
        Method::GET,
        &format!("/v1/workspaces/{ws}/files/pid.txt"),
        &key,
        b"",
    )
    .await;
    let pid: i32 = pid
        .text
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{:?}: {e}", pid.text));
    let mut alive = true;
    for _ in 0..200 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        alive = !stat.is_empty()
            && !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z');
        if !alive {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!alive, "the command of an abandoned exec runs on");
}

#[tokio::test]
async fn exec_output_past_its_limit_says_it_was_cut() {
    let api = common::TestApi::new().await;
    let (key, ws) = tenant(&api, "loud@example.com").await;
    let sid = session(&api, &key, &ws).await;
    let mut seen = Vec::new();
    for (bytes, cut) in [(1000, false), (9 * 1024 * 1024, true)] {
        let out = exec(
            &api,
            &key,
            &sid,
            &format!("head -c {bytes} /dev/zero | tr '\\\\0' x"),
        )
        .await;
        let len = out["stdout"].as_str().map_or(0, str::len);
        assert_eq!(out["truncated"].as_bool(), Some(cut), "{bytes} bytes");
        seen.push(len);
    }
    assert_eq!(seen, [1000, onmemos_core::api::MAX_EXEC_OUTPUT_BYTES]);
}

/// Sizes near 2^64 (and past i64) are refused by name before anything is staged; they no
/// longer wrap the quota check.
#[tokio::test]
async fn upload_sizes_past_the_largest_object_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let api = api(dir.path(), LocalCompute::unsandboxed(root.path())).await;
    let (key, ws) = tenant(&api, "huge@example.com").await;
    let uploads = format!("/v1/workspaces/{ws}/uploads");
    for size in [
        u64::MAX,
        u64::MAX - 5,
        1 << 63,
        onmemos_core::api::MAX_OBJECT_BYTES + 1,
    ] {
        let r = api
            .call(
                Method::POST,
                &uploads,
                Some(&key),
                Some(json!({"path": "big.bin", "size": size})),
            )
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["field"], "size", "{}", r.text);
    }
    let r = api
        .call(
            Method::POST,
            &uploads,
            Some(&key),
            Some(json!({"path": "big.bin", "size": onmemos_core::api::MAX_OBJECT_BYTES})),
        )
        .await;
    r.assert_error(413, "quota_exceeded");
    let staged = std::fs::read_dir(dir.path().join("storage/.onmemos-staging/uploads"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(staged, 0, "a refused upload left a staging file");
}

/// A 10 MiB WebSocket frame closes its own socket and never reaches the terminal, which goes
/// on serving the next socket at once.
#[tokio::test]
async fn a_huge_shell_frame_closes_its_socket_and_wedges_nothing() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let api = common::TestApi::new().await;
    let (key, ws) = tenant(&api, "flood@example.com").await;
    let sid = session(&api, &key, &ws).await;
    let addr = common::serve(api.engine.clone()).await;
    let connect = || async {
        let mut request = format!("ws://{addr}/v1/sessions/{sid}/shell?rows=24&cols=80")
            .into_client_request()
            .unwrap_or_else(|e| panic!("{e}"));
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {key}")
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        tokio_tungstenite::connect_async(request)
            .await
            .unwrap_or_else(|e| panic!("shell: {e}"))
            .0
    };
    let mut flood = connect().await;
    let _ = flood
        .send(Frame::Binary(vec![b'y'; 10 * 1024 * 1024].into()))
        .await;
    let mut closed = false;
    while let Ok(Some(frame)) =
        tokio::time::timeout(std::time::Duration::from_secs(30), flood.next()).await
    {
        match frame {
            Ok(Frame::Close(frame)) => {
                closed = frame.is_none_or(|f| u16::from(f.code) == 1009);
                break;
            }
            Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "the socket that sent a 10 MiB frame stayed open");

    let mut next = connect().await;
    next.send(Frame::Binary(b"echo after-$((6*7))\n".to_vec().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = String::new();
    while !seen.contains("after-42") {
        match tokio::time::timeout(std::time::Duration::from_secs(30), next.next()).await {
            Ok(Some(Ok(Frame::Binary(b)))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Ok(_))) => {}
            other => panic!("the terminal is wedged: {other:?}, after {seen:?}"),
        }
    }
}
