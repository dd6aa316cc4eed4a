//! The API through the router (`oneshot`, no socket): keys, workspaces, templates, health.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApi;
use serde_json::json;

#[tokio::test]
async fn workspace_lifecycle_through_the_api() {
    let api = TestApi::new().await;
    let key = api.member("ada@example.com").await;
    let r = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&key),
            Some(json!({"name": "research", "env": {"A": "1"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap_or_default().to_owned();
    assert!(id.starts_with("ws_"));
    assert_eq!(r.body["env"]["A"], "1");

    let dup = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&key),
            Some(json!({"name": "research"})),
        )
        .await;
    dup.assert_error(409, "conflict");
    assert_eq!(dup.body["field"], "name");

    let r = api
        .call(
            Method::PATCH,
            &format!("/v1/workspaces/{id}"),
            Some(&key),
            Some(json!({"name": "renamed", "description": "d"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "renamed");
    assert_eq!(r.body["env"]["A"], "1", "PATCH without env must keep it");
    let r = api
        .call(
            Method::GET,
            &format!("/v1/workspaces/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["description"], "d");

    for i in 0..4 {
        let r = api
            .call(
                Method::POST,
                "/v1/workspaces",
                Some(&key),
                Some(json!({"name": format!("w{i}")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/workspaces?limit=2&cursor={c}"),
            None => "/v1/workspaces?limit=2".to_string(),
        };
        let r = api.call(Method::GET, &path, Some(&key), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 2);
        names.extend(
            items
                .iter()
                .map(|w| w["name"].as_str().unwrap_or_default().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["renamed", "w0", "w1", "w2", "w3"]);

    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/workspaces/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    api.call(
        Method::GET,
        &format!("/v1/workspaces/{id}"),
        Some(&key),
        None,
    )
    .await
    .assert_error(404, "not_found");
}

#[tokio::test]
async fn keys_are_scoped_and_revocable() {
    let api = TestApi::new().await;
    let key = api.member("bo@example.com").await;
    let r = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "ci", "scopes": ["workspaces:read"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let narrow = r.body["secret"].as_str().unwrap_or_default().to_owned();
    let narrow_id = r.body["key"]["id"].as_str().unwrap_or_default().to_owned();
    assert!(narrow.starts_with("onm_"));
    assert_eq!(r.body["key"]["prefix"].as_str(), Some(&narrow[..12]));

    let listed = api
        .call(Method::GET, "/v1/api-keys", Some(&key), None)
        .await;
    assert!(!listed.text.contains(&narrow), "a listing shows a secret");
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(2));

    assert_eq!(
        api.call(Method::GET, "/v1/workspaces", Some(&narrow), None)
            .await
            .status,
        StatusCode::OK
    );
    let denied = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&narrow),
            Some(json!({"name": "x"})),
        )
        .await;
    denied.assert_error(403, "insufficient_scope");
    assert!(
        denied.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("workspaces:write")
    );

    let escalate = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "root", "scopes": ["admin"]})),
        )
        .await;
    escalate.assert_error(403, "insufficient_scope");

    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{narrow_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["revoked_at"].is_string());
    api.call(Method::GET, "/v1/workspaces", Some(&narrow), None)
        .await
        .assert_error(401, "api_key_revoked");

    let me = api.call(Method::GET, "/v1/me", Some(&key), None).await;
    assert_eq!(me.body["email"], "bo@example.com");
    assert_eq!(me.body["role"], "member");
    api.call(Method::GET, "/v1/users", Some(&key), None)
        .await
        .assert_error(403, "insufficient_scope");
}

#[tokio::test]
async fn templates_builtin_and_custom_with_filters() {
    let api = TestApi::new().await;
    let key = api.member("cy@example.com").await;
    let r = api
        .call(Method::GET, "/v1/templates", Some(&key), None)
        .await;
    let mut names: Vec<String> = r.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data-science", "ml", "nodejs", "python"]);

    let r = api
        .call(Method::GET, "/v1/templates?category=ml", Some(&key), None)
        .await;
    assert_eq!(r.body["items"][0]["name"], "ml");
    assert_eq!(r.body["items"][0]["resources"]["gpu"], 1);
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
    let r = api
        .call(Method::GET, "/v1/templates?tag=jupyter", Some(&key), None)
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["items"][0]["name"], "data-science");

    let body = json!({
        "name": "rust-dev", "image": "rust:1.88", "tags": ["rust", "systems"],
        "resources": {"cpu_millis": 2000, "memory_mib": 4096, "disk_gib": 20}
    });
    let r = api
        .call(Method::POST, "/v1/templates", Some(&key), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["category"], "custom");
    assert_eq!(r.body["builtin"], false);
    let by_name = api
        .call(Method::GET, "/v1/templates/rust-dev", Some(&key), None)
        .await;
    assert_eq!(by_name.body["id"], r.body["id"]);
    let r = api
        .call(Method::GET, "/v1/templates?tag=rust", Some(&key), None)
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));

    let taken = json!({"name": "python", "image": "x", "resources": {"cpu_millis": 100, "memory_mib": 128, "disk_gib": 1}});
    api.call(Method::POST, "/v1/templates", Some(&key), Some(taken))
        .await
        .assert_error(409, "conflict");
    api.call(Method::DELETE, "/v1/templates/python", Some(&key), None)
        .await
        .assert_error(403, "permission_denied");
    let r = api
        .call(Method::DELETE, "/v1/templates/rust-dev", Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    api.call(Method::GET, "/v1/templates/rust-dev", Some(&key), None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let api = TestApi::new().await;
    let r = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);

    let doc = api.call(Method::GET, "/openapi.json", None, None).await;
    assert!(
        doc.body["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1")
    );
    for path in [
        "/v1/workspaces",
        "/v1/workspaces/{workspace_id}",
        "/v1/api-keys",
        "/v1/templates/{template}",
        "/v1/users",
    ] {
        assert!(
            doc.body["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());

    api.call(Method::GET, "/v1/workspaces", Some(&api.admin_key), None)
        .await;
    let m = api.call(Method::GET, "/metrics", None, None).await;
    assert!(
        m.text.contains(
            r#"onmemos_http_requests_total{method="GET",route="/v1/workspaces",status="200"} 1"#
        ),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("onmemos_http_request_duration_seconds_bucket")
    );
}

#[tokio::test]
async fn request_id_is_echoed_or_made() {
    let api = TestApi::new().await;
    let req = axum::http::Request::builder()
        .uri("/healthz")
        .header("x-request-id", "my-trace-123")
        .body(axum::body::Body::empty())
        .unwrap_or_default();
    let r = api.send(req).await;
    assert_eq!(
        r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("my-trace-123")
    );
    let r = api.call(Method::GET, "/healthz", None, None).await;
    let made = r
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(made.len(), 36, "expected a UUID, got {made:?}");
}
