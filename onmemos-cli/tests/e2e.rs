//! End to end over a real loopback socket: `onmemos serve` as a process, `onmemos admin
//! create-user` bootstrapping the first admin, and the typed client doing the rest.

mod common;

use std::path::Path;

use common::{Server, client, create_user, onmemos, secret, start};
use onmemos::client::ErrorKind;
use onmemos::core::api::{
    CreateApiKey, CreateUser, CreateWorkspace, ListParams, TemplateListParams,
};
use onmemos::core::model::{Scope, TemplateCategory};

#[tokio::test]
async fn serve_bootstrap_and_client_round_trip() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let created = create_user(onmemos(dir.path()), "Root@Example.com", true);
    let admin_key = secret(&created);
    assert!(admin_key.starts_with("onm_"), "{created}");
    assert_eq!(
        created["user"]["email"], "root@example.com",
        "emails are stored lowercased"
    );

    let server = start(dir.path()).await;
    let admin = client(&server.url, &admin_key);
    assert_eq!(
        admin.users().me().await.map(|u| u.email).ok().as_deref(),
        Some("root@example.com")
    );

    let member = admin
        .users()
        .create(&CreateUser {
            email: "ada@example.com".into(),
            name: Some("Ada".into()),
            role: None,
        })
        .await
        .unwrap_or_else(|e| panic!("create user: {e}"));
    let ada = client(&server.url, &member.api_key.secret);

    let key = ada
        .api_keys()
        .create(&CreateApiKey {
            name: "laptop".into(),
            scopes: Some(vec![Scope::WorkspacesRead, Scope::TemplatesRead]),
            expires_at: None,
        })
        .await
        .unwrap_or_else(|e| panic!("create key: {e}"));
    let ws = ada
        .workspaces()
        .create(&CreateWorkspace {
            name: "research".into(),
            description: None,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("create workspace: {e}"));
    assert_eq!(ada.workspaces().get(ws.id).await.ok(), Some(ws.clone()));

    let narrow = client(&server.url, &key.secret);
    let listed = narrow
        .workspaces()
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(listed.items, vec![ws.clone()]);
    let ml = narrow
        .templates()
        .list(&TemplateListParams {
            category: Some(TemplateCategory::Ml),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("templates: {e}"));
    assert_eq!(
        ml.items.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["ml"]
    );

    let denied = narrow
        .workspaces()
        .create(&CreateWorkspace {
            name: "nope".into(),
            description: None,
            env: Default::default(),
        })
        .await
        .err();
    assert_eq!(
        denied.as_ref().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied)
    );
    assert_eq!(
        denied.as_ref().and_then(|e| e.code()),
        Some("insufficient_scope")
    );
    assert!(
        denied.as_ref().and_then(|e| e.request_id()).is_some(),
        "errors carry the request id"
    );

    ada.api_keys()
        .revoke(key.key.id)
        .await
        .unwrap_or_else(|e| panic!("revoke: {e}"));
    let revoked = narrow.workspaces().list(&ListParams::default()).await.err();
    assert_eq!(
        revoked.as_ref().map(|e| e.kind()),
        Some(ErrorKind::Authentication)
    );
    assert_eq!(
        revoked.as_ref().and_then(|e| e.code()),
        Some("api_key_revoked")
    );

    let bad = ada
        .workspaces()
        .create(&CreateWorkspace {
            name: "Not Valid".into(),
            description: None,
            env: Default::default(),
        })
        .await
        .err();
    assert_eq!(bad.as_ref().map(|e| e.kind()), Some(ErrorKind::Validation));
    assert_eq!(bad.as_ref().and_then(|e| e.field()), Some("name"));

    // The CLI speaks to the same server through the client, with a table or JSON.
    let out = onmemos(dir.path())
        .args([
            "--json",
            "--url",
            &server.url,
            "--api-key",
            &member.api_key.secret,
            "workspace",
            "list",
        ])
        .output()
        .unwrap_or_else(|e| panic!("workspace list: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(listed[0]["id"], ws.id.to_string());
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let created = create_user(onmemos(dir.path()), "keep@example.com", false);
    let key = secret(&created);
    let ws = {
        let server = start(dir.path()).await;
        let c = client(&server.url, &key);
        c.workspaces()
            .create(&CreateWorkspace {
                name: "kept".into(),
                description: None,
                env: Default::default(),
            })
            .await
            .unwrap_or_else(|e| panic!("create: {e}"))
    };
    let server = start(dir.path()).await;
    let c = client(&server.url, &key);
    assert_eq!(c.workspaces().get(ws.id).await.ok(), Some(ws));
}

#[test]
fn invalid_settings_stop_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = onmemos(dir.path())
        .args(["serve"])
        .env("ONMEMOS_LISTEN", "not-an-address")
        .output()
        .unwrap_or_else(|e| panic!("serve: {e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listen") && stderr.contains("ONMEMOS_LISTEN"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("onmemos.toml"),
        "[server]\nmax_body_bytes = -1\n",
    )
    .unwrap_or_default();
    let out = onmemos(dir.path())
        .args(["serve"])
        .output()
        .unwrap_or_else(|e| panic!("serve: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("server.max_body_bytes"),
        "{stderr}"
    );
}

#[tokio::test]
async fn credits_through_cli_and_client_then_reconcile() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let created = create_user(onmemos(dir.path()), "ops@example.com", true);
    let admin_key = secret(&created);
    let server = start(dir.path()).await;
    let admin = client(&server.url, &admin_key);
    let member = admin
        .users()
        .create(&CreateUser {
            email: "buyer@example.com".into(),
            name: None,
            role: None,
        })
        .await
        .unwrap_or_else(|e| panic!("create user: {e}"));
    let out = onmemos(dir.path())
        .args([
            "--json",
            "--url",
            &server.url,
            "--api-key",
            &admin_key,
            "credits",
            "purchase",
        ])
        .args([
            "--user",
            &member.user.id.to_string(),
            "--amount",
            "2.5",
            "--reference",
            "order 9",
        ])
        .output()
        .unwrap_or_else(|e| panic!("credits purchase: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let buyer = client(&server.url, &member.api_key.secret);
    let balance = buyer
        .credits()
        .balance()
        .await
        .unwrap_or_else(|e| panic!("balance: {e}"));
    assert_eq!(balance.available, 2_500_000);
    assert_eq!(balance.grants.len(), 1);
    let denied = buyer
        .credits()
        .purchase(&onmemos::core::api::CreditRequest {
            user_id: member.user.id,
            amount_micros: 1,
            priority: None,
            expires_at: None,
            reference: None,
        })
        .await
        .err();
    assert_eq!(denied.map(|e| e.kind()), Some(ErrorKind::PermissionDenied));
    drop(server);
    let out = onmemos(dir.path())
        .args(["admin", "reconcile"])
        .output()
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("consistent"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `onmemos --json <args>` against `server` as `key`; its stdout as JSON.
fn cli_json(dir: &Path, server: &Server, key: &str, args: &[&str]) -> serde_json::Value {
    let out = onmemos(dir)
        .args(["--json", "--url", &server.url, "--api-key", key])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("onmemos {args:?}: {e}"));
    assert!(
        out.status.success(),
        "onmemos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "onmemos {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn storage_cp_ls_rm_through_the_cli_on_the_default_local_store() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let created = create_user(onmemos(dir.path()), "files@example.com", false);
    let key = secret(&created);
    let server = start(dir.path()).await;
    let me = client(&server.url, &key);
    me.workspaces()
        .create(&CreateWorkspace {
            name: "lab".into(),
            description: None,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("workspace: {e}"));
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("train data.bin"), &data).unwrap_or_else(|e| panic!("{e}"));

    let up = cli_json(
        dir.path(),
        &server,
        &key,
        &["storage", "cp", "train data.bin", "lab:in/"],
    );
    assert_eq!(up["path"], "in/train data.bin");
    assert_eq!(up["size"], data.len());
    let listed = cli_json(dir.path(), &server, &key, &["storage", "ls", "lab:in/"]);
    assert_eq!(listed[0]["path"], "in/train data.bin", "{listed}");

    // An interrupted download left its first megabyte (marked, to tell it from a fresh
    // download): `cp` continues it rather than starting over.
    let dest = dir.path().join("copy.bin");
    std::fs::write(dir.path().join("copy.bin.part"), vec![0xEEu8; 1_000_000])
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("copy.bin.part.etag"),
        up["etag"].as_str().unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    cli_json(
        dir.path(),
        &server,
        &key,
        &["storage", "cp", "lab:in/train data.bin", "copy.bin"],
    );
    let copied = std::fs::read(&dest).unwrap_or_default();
    assert_eq!(copied.len(), data.len());
    assert!(
        copied[..1_000_000].iter().all(|b| *b == 0xEE),
        "the download started over: {up} {listed}"
    );
    assert!(
        copied[1_000_000..] == data[1_000_000..],
        "the continued part differs"
    );
    assert!(!dir.path().join("copy.bin.part").exists());
    // Without an interrupted part, a download is the object.
    cli_json(
        dir.path(),
        &server,
        &key,
        &["storage", "cp", "lab:in/train data.bin", "copy.bin"],
    );
    assert!(
        std::fs::read(&dest).unwrap_or_default() == data,
        "the download differs"
    );

    let usage = cli_json(dir.path(), &server, &key, &["storage", "usage", "lab"]);
    assert_eq!(usage["bytes"], data.len());
    cli_json(
        dir.path(),
        &server,
        &key,
        &["storage", "rm", "lab:in/train data.bin"],
    );
    let listed = cli_json(dir.path(), &server, &key, &["storage", "ls", "lab"]);
    assert_eq!(listed, serde_json::json!([]));
    // The default store keeps files under the data directory.
    assert!(dir.path().join("data/storage").is_dir());
}

#[tokio::test]
async fn storage_cp_continues_an_interrupted_upload() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let created = create_user(onmemos(dir.path()), "resume@example.com", false);
    let key = secret(&created);
    let server = start(dir.path()).await;
    let me = client(&server.url, &key);
    let ws = me
        .workspaces()
        .create(&CreateWorkspace {
            name: "lab".into(),
            description: None,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("workspace: {e}"))
        .id;
    let source = dir.path().join("big.bin");
    let data: Vec<u8> = (0..20_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&source, &data).unwrap_or_else(|e| panic!("{e}"));

    // An earlier `cp` started the upload and got its first part through (marked, to tell it
    // from a part sent again), then died; its state file names the upload.
    let upload = me
        .storage()
        .create_upload(
            ws,
            &onmemos::core::api::CreateUpload {
                path: "big.bin".into(),
                size: data.len() as u64,
                content_type: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create_upload: {e}"));
    let first = upload.part_size as usize;
    me.storage()
        .put_part(ws, upload.id, 0, vec![0xEE; first].into())
        .await
        .unwrap_or_else(|e| panic!("put_part: {e}"));
    let meta = std::fs::metadata(&source).unwrap_or_else(|e| panic!("{e}"));
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let state_key = format!(
        "{} {ws}:big.bin {} {} {modified}",
        server.url,
        source.canonicalize().unwrap_or_default().display(),
        data.len()
    );
    let state = dir.path().join("state/uploads.json");
    std::fs::create_dir_all(dir.path().join("state")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &state,
        serde_json::json!({ state_key: upload.id }).to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let up = cli_json(
        dir.path(),
        &server,
        &key,
        &["storage", "cp", "big.bin", "lab:"],
    );
    assert_eq!(up["size"], data.len());
    let stored = me
        .storage()
        .download(ws, "big.bin", None)
        .await
        .unwrap_or_else(|e| panic!("download: {e}"));
    let mut got = Vec::new();
    let mut body = stored.body;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        got.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(got.len(), data.len());
    assert!(
        got[..first].iter().all(|b| *b == 0xEE),
        "part 0 was sent again"
    );
    assert!(got[first..] == data[first..], "the continued parts differ");
    // The upload is done and forgotten, on both sides.
    let status = me.storage().upload_status(ws, upload.id).await;
    assert_eq!(
        status.map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
    let left: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap_or_default()).unwrap_or_default();
    assert_eq!(left, serde_json::json!({}));

    // With --no-resume, a large file is uploaded whole again, still in parts.
    let again = cli_json(
        dir.path(),
        &server,
        &key,
        &["storage", "cp", "--no-resume", "big.bin", "lab:copy.bin"],
    );
    assert_eq!(again["size"], data.len());
}

/// Runs `onmemos optimize --snapshot <path>` (table output) against `server` as `key`.
fn optimize_table(dir: &Path, server: &Server, key: &str, path: &str) -> std::process::Output {
    onmemos(dir)
        .args(["--url", &server.url, "--api-key", key])
        .args(["optimize", "--snapshot", path])
        .output()
        .unwrap_or_else(|e| panic!("onmemos optimize: {e}"))
}

#[tokio::test]
async fn optimize_prints_a_report_for_a_snapshot_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let created = create_user(onmemos(dir.path()), "ops@example.com", false);
    let key = secret(&created);
    let server = start(dir.path()).await;
    let request = onmemos::optimizer::synthetic::demo_request(1);
    let file = dir.path().join("cluster.json");
    let json = serde_json::to_string(&request).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&file, json).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_string_lossy().into_owned();

    // The table, and the totals below it.
    let out = optimize_table(dir.path(), &server, &key, &path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "saving/month",
        "consolidation",
        "spot placement",
        "rightsizing",
        "office hours",
        "Deployment/app-2",
        "expected monthly savings",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }

    // The same report as JSON, equal to the library's own answer.
    let report = cli_json(
        dir.path(),
        &server,
        &key,
        &["optimize", "--snapshot", &path],
    );
    let direct = onmemos::optimizer::CostOptimizer::new()
        .and_then(|o| o.run(&request))
        .unwrap_or_else(|e| panic!("{e}"));
    let recs = report["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(recs.len(), direct.len());
    for (got, want) in recs.iter().zip(&direct) {
        assert_eq!(got["target"], want.target.as_str());
        assert_eq!(got["monthly_savings"].as_i64(), Some(want.monthly_savings));
    }

    // A policy file replaces the request's: no spot share, no spot placement.
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"max_spot_share": 0}"#).unwrap_or_else(|e| panic!("{e}"));
    let policy = policy.to_string_lossy().into_owned();
    let report = cli_json(
        dir.path(),
        &server,
        &key,
        &["optimize", "--snapshot", &path, "--policy", &policy],
    );
    let kinds: Vec<&str> = report["totals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert!(
        !kinds.contains(&"spot_placement") && kinds.contains(&"rightsizing"),
        "{kinds:?}"
    );

    // A malformed file is refused before any request, naming the place.
    std::fs::write(
        &file,
        r#"{"taken_at": "2026-01-01T00:00:00Z", "nodes": [{"name": 3}], "pods": []}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = optimize_table(dir.path(), &server, &key, &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("nodes[0].name"), "{stderr}");
}

/// A proxy to `upstream` that loses the answer to the first request: it forwards the request,
/// waits until the server starts answering (the request has been applied), then closes the
/// client's connection. Later connections pass through.
async fn lossy_proxy(upstream: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (listener, url) = common::listen().await;
    let upstream = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut downstream, _)) = listener.accept().await {
            let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            if std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let (mut down_read, _down_write) = downstream.split();
                    let (mut up_read, mut up_write) = up.split();
                    let mut buf = vec![0u8; 64 * 1024];
                    let forward = async {
                        while let Ok(n) = down_read.read(&mut buf).await {
                            if n == 0 || up_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let mut answer = [0u8; 1];
                    tokio::select! {
                        _ = forward => {}
                        _ = up_read.read(&mut answer) => {}
                    }
                    // Both sockets drop here: the client never sees the answer.
                });
            } else {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut downstream, &mut up).await;
                });
            }
        }
    });
    url
}

#[tokio::test]
async fn a_post_whose_answer_is_lost_is_retried_and_applied_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let created = create_user(onmemos(dir.path()), "retry@example.com", false);
    let key = secret(&created);
    let server = start(dir.path()).await;
    let proxy = lossy_proxy(server.url.clone()).await;
    let through_proxy = client(&proxy, &key);
    let ws = through_proxy
        .workspaces()
        .create(&CreateWorkspace {
            name: "once".into(),
            description: None,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("create through the lossy proxy: {e}"));
    assert_eq!(ws.name, "once");
    let page = client(&server.url, &key)
        .workspaces()
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let named: Vec<_> = page.items.iter().filter(|w| w.name == "once").collect();
    assert_eq!(
        named.len(),
        1,
        "the retried POST was applied {} times",
        named.len()
    );
    assert_eq!(
        named[0].id, ws.id,
        "the retry got the first attempt's answer"
    );
}

/// A server, an admin `email` with credits, and a running session of theirs: (data dir,
/// server, key, client, session).
async fn with_a_session(
    email: &str,
) -> (
    tempfile::TempDir,
    Server,
    String,
    onmemos::client::Client,
    onmemos::client::model::Session,
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let created = create_user(onmemos(dir.path()), email, true);
    let key = secret(&created);
    let server = start(dir.path()).await;
    let admin = client(&server.url, &key);
    common::buy_credits(&admin, 5_000_000).await;
    let ws = admin
        .workspaces()
        .create(&CreateWorkspace {
            name: "lab".into(),
            description: None,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("workspace: {e}"));
    let session = common::start_session(&admin, ws.id).await;
    (dir, server, key, admin, session)
}

/// `onmemos session exec` passes environment (`-e`) and standard input (`-i`), writes the
/// command's output byte for byte as it comes, and exits with the command's exit code, as
/// `ssh` and `kubectl exec` do.
#[tokio::test]
async fn session_exec_exits_with_the_command_code_and_passes_env_and_stdin() {
    use std::io::Write as _;
    let (dir, server, key, _admin, session) = with_a_session("exec@example.com").await;
    let id = session.id.to_string();
    let script = r#"printf '%s ' "$GREETING"; cat; printf '\303'; sleep 0.2; printf '\251'; printf '\377' >&2; exit 7"#;
    let mut child = onmemos(dir.path())
        .args(["--url", &server.url, "--api-key", &key, "session", "exec"])
        .args(["-e", "GREETING=hi", "-i", &id, "--", "sh", "-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("onmemos: {e}"));
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(b"from-stdin"))
        .transpose()
        .unwrap_or_else(|e| panic!("stdin: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("onmemos: {e}"));
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, "hi from-stdin\u{e9}".as_bytes());
    assert_eq!(out.stderr, [0xff]);
    let ok = onmemos(dir.path())
        .args([
            "--url",
            &server.url,
            "--api-key",
            &key,
            "session",
            "exec",
            &id,
        ])
        .args(["--", "true"])
        .output()
        .unwrap_or_else(|e| panic!("onmemos: {e}"));
    assert_eq!(ok.status.code(), Some(0));
}

/// `onmemos session events --follow` prints events as they happen and ends with the session's
/// last one; without `--follow` it prints every event (the client's paged stream).
#[tokio::test]
async fn session_events_follow_until_the_session_ends() {
    let (dir, server, key, admin, session) = with_a_session("events@example.com").await;
    let id = session.id.to_string();
    let follower = onmemos(dir.path())
        .args(["--json", "--url", &server.url, "--api-key", &key])
        .args(["session", "events", "--follow", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("onmemos: {e}"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    admin
        .sessions()
        .stop(session.id)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let out = tokio::task::spawn_blocking(move || follower.wait_with_output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("onmemos: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kinds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["type"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("created"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("stopped"),
        "{kinds:?}"
    );
    let all = cli_json(dir.path(), &server, &key, &["session", "events", &id]);
    assert_eq!(all.as_array().map(Vec::len), Some(kinds.len()), "{all}");
}
