//! Tenant isolation: for every operation of the OpenAPI document, a second user's key gets 404
//! or 403 on the first user's resources, never sees them in lists, and changes nothing.
//! The operations are read from the document, so a new endpoint cannot be forgotten here.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApi;
use serde_json::{Value, json};

struct Alice {
    key: String,
    user: String,
    workspace: String,
    api_key: String,
    template: String,
    session: String,
    upload: String,
}

async fn alice(api: &TestApi) -> Alice {
    let key = api.member("alice@example.com").await;
    let me = api.call(Method::GET, "/v1/me", Some(&key), None).await;
    let ws = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&key),
            Some(json!({"name": "secret-project"})),
        )
        .await;
    let k = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "laptop"})),
        )
        .await;
    let body = json!({"name": "alice-tpl", "image": "x", "resources": {"cpu_millis": 100, "memory_mib": 128, "disk_gib": 1}});
    let t = api
        .call(Method::POST, "/v1/templates", Some(&key), Some(body))
        .await;
    // Credits too, so her transfers and balance exist to be leaked.
    let credit =
        json!({"user_id": me.body["id"], "amount_micros": 4_242_424, "reference": "alice-invoice"});
    let bought = api
        .call(
            Method::POST,
            "/v1/credits/purchases",
            Some(&api.admin_key),
            Some(credit),
        )
        .await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.text);
    let session = api
        .call(
            Method::POST,
            "/v1/sessions",
            Some(&key),
            Some(json!({"workspace_id": ws.body["id"], "template": "python"})),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let file = api
        .send(
            axum::http::Request::put(format!(
                "/v1/workspaces/{}/files/secret.txt",
                ws.body["id"].as_str().unwrap_or_default()
            ))
            .header("authorization", format!("Bearer {key}"))
            .body(axum::body::Body::from("alice-file-content"))
            .unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
    assert_eq!(file.status, StatusCode::CREATED, "{}", file.text);
    let upload = api
        .call(
            Method::POST,
            &format!(
                "/v1/workspaces/{}/uploads",
                ws.body["id"].as_str().unwrap_or_default()
            ),
            Some(&key),
            Some(json!({"path": "pending.bin", "size": 12})),
        )
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{}", upload.text);
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Alice {
        user: s(&me.body["id"]),
        workspace: s(&ws.body["id"]),
        api_key: s(&k.body["key"]["id"]),
        template: s(&t.body["id"]),
        session: s(&session.body["id"]),
        upload: s(&upload.body["id"]),
        key,
    }
}

/// A valid body for operations that take one, so a refusal is about ownership, not input.
fn body_for(method: &Method, path: &str) -> Option<Value> {
    match (method.as_str(), path) {
        ("PATCH", "/v1/workspaces/{workspace_id}") => {
            Some(json!({"name": "stolen", "env": {"X": "1"}}))
        }
        ("POST", p) if p.ends_with("/exec") || p.ends_with("/exec/stream") => {
            Some(json!({"command": ["cat", "/etc/hostname"]}))
        }
        ("POST", p) if p.ends_with("files:presign") => {
            Some(json!({"path": "secret.txt", "method": "GET"}))
        }
        ("POST", p) if p.ends_with("/uploads") => Some(json!({"path": "stolen.bin", "size": 1})),
        ("POST", _) | ("PUT", _) | ("PATCH", _) => Some(json!({})),
        _ => None,
    }
}

/// Alice's resources as she sees them, to prove nothing changed.
async fn snapshot(api: &TestApi, a: &Alice) -> Vec<String> {
    let mut out = Vec::new();
    for path in [
        format!("/v1/workspaces/{}", a.workspace),
        format!("/v1/api-keys/{}", a.api_key),
        format!("/v1/templates/{}", a.template),
        format!("/v1/sessions/{}", a.session),
        format!("/v1/sessions/{}/events", a.session),
        format!("/v1/workspaces/{}/files", a.workspace),
        format!("/v1/workspaces/{}/files/secret.txt", a.workspace),
        format!("/v1/workspaces/{}/uploads/{}", a.workspace, a.upload),
        "/v1/sessions".to_string(),
        "/v1/workspaces".to_string(),
        "/v1/templates".to_string(),
        "/v1/credits".to_string(),
        "/v1/credits/transfers".to_string(),
    ] {
        let r = api.call(Method::GET, &path, Some(&a.key), None).await;
        assert_eq!(r.status, StatusCode::OK, "alice reads {path}: {}", r.text);
        out.push(r.text);
    }
    out
}

#[tokio::test]
async fn every_operation_refuses_other_tenants_resources() {
    let api = TestApi::new().await;
    let a = alice(&api).await;
    let bob = api.member("bob@example.com").await;
    let before = snapshot(&api, &a).await;
    let doc = serde_json::to_value(onmemos_server::openapi()).unwrap_or_default();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut checked = 0;
    for (template, item) in &paths {
        for (method_name, _) in item.as_object().into_iter().flatten() {
            let Ok(method) = method_name.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            let mut path = template.clone();
            let mut owned = false;
            for (param, value) in [
                ("{workspace_id}", &a.workspace),
                ("{key_id}", &a.api_key),
                ("{user_id}", &a.user),
                ("{template}", &a.template),
                ("{session_id}", &a.session),
                ("{path}", &"secret.txt".to_owned()),
                ("{upload_id}", &a.upload),
                ("{part}", &"0".to_owned()),
            ] {
                if path.contains(param) {
                    path = path.replace(param, value);
                    owned = true;
                }
            }
            assert!(
                !path.contains('{'),
                "unknown path parameter in {template}: teach this test about it"
            );
            let r = api
                .call(
                    method.clone(),
                    &path,
                    Some(&bob),
                    body_for(&method, template),
                )
                .await;
            let leaked = [
                a.workspace.as_str(),
                &a.api_key,
                &a.template,
                &a.session,
                &a.user,
                &a.upload,
                "secret-project",
                "alice-file-content",
            ]
            .into_iter()
            .find(|id| r.text.contains(id));
            assert_eq!(
                leaked, None,
                "{method} {template} showed alice's data to bob: {}",
                r.text
            );
            if owned {
                assert!(
                    matches!(r.status.as_u16(), 403 | 404),
                    "{method} {template} gave bob {} on alice's resource: {}",
                    r.status,
                    r.text
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} operations were checked");
    assert_eq!(
        snapshot(&api, &a).await,
        before,
        "bob's requests changed alice's resources"
    );
}
