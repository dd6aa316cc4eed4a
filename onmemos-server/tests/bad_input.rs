//! Bad input gets the right 4xx with a clear message naming what was wrong, and changes nothing.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use chrono::Duration;
use common::TestApi;
use onmemos_core::clock::ManualClock;
use serde_json::json;

fn raw(
    method: Method,
    path: &str,
    key: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", content_type)
        .body(body.into())
        .unwrap_or_default()
}

#[tokio::test]
async fn malformed_bodies_are_rejected_with_the_field_and_nothing_changes() {
    let api = TestApi::with(
        Arc::new(onmemos_core::clock::SystemClock),
        onmemos_server::ServerConfig {
            max_body_bytes: 64 * 1024,
            ..Default::default()
        },
    )
    .await;
    let key = api.member("dee@example.com").await;
    let ok = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&key),
            Some(json!({"name": "keep"})),
        )
        .await;
    let id = ok.body["id"].as_str().unwrap_or_default().to_owned();
    let before = api
        .call(Method::GET, "/v1/workspaces", Some(&key), None)
        .await
        .text;

    let r = api
        .send(raw(
            Method::POST,
            "/v1/workspaces",
            &key,
            "application/json",
            "{\"name\": ",
        ))
        .await;
    r.assert_error(400, "malformed_body");
    let r = api
        .send(raw(
            Method::POST,
            "/v1/workspaces",
            &key,
            "application/json",
            "{\"name\":\"a\"} trailing",
        ))
        .await;
    r.assert_error(400, "malformed_body");
    let r = api
        .send(raw(
            Method::POST,
            "/v1/workspaces",
            &key,
            "text/plain",
            "{\"name\":\"a\"}",
        ))
        .await;
    r.assert_error(415, "unsupported_media_type");

    let r = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&key),
            Some(json!({"name": "a", "colour": "red"})),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("colour"),
        "{}",
        r.text
    );
    let r = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&key),
            Some(json!({"name": 5})),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["field"], "name", "{}", r.text);
    let r = api
        .call(Method::POST, "/v1/workspaces", Some(&key), Some(json!({})))
        .await;
    r.assert_error(400, "invalid_request");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("name"),
        "{}",
        r.text
    );

    for bad in ["Bad Name", "-x", "", &"a".repeat(64), "ünïcode"] {
        let r = api
            .call(
                Method::POST,
                "/v1/workspaces",
                Some(&key),
                Some(json!({"name": bad})),
            )
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["field"], "name", "{bad:?}: {}", r.text);
    }
    let r = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(&key),
            Some(json!({"name": "x", "env": {"1BAD": "v"}})),
        )
        .await;
    assert_eq!(r.body["field"], "env", "{}", r.text);
    let r = api
        .call(
            Method::PATCH,
            &format!("/v1/workspaces/{id}"),
            Some(&key),
            Some(json!({"name": "NOPE"})),
        )
        .await;
    assert_eq!(r.body["field"], "name");

    let template = json!({"name": "t", "image": "x", "resources": {"cpu_millis": 1, "memory_mib": 128, "disk_gib": 1}});
    let r = api
        .call(Method::POST, "/v1/templates", Some(&key), Some(template))
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["field"], "resources.cpu_millis", "{}", r.text);

    let huge = json!({"name": "big", "description": "x".repeat(200 * 1024)}).to_string();
    let r = api
        .send(raw(
            Method::POST,
            "/v1/workspaces",
            &key,
            "application/json",
            huge,
        ))
        .await;
    r.assert_error(413, "payload_too_large");

    assert_eq!(
        api.call(Method::GET, "/v1/workspaces", Some(&key), None)
            .await
            .text,
        before,
        "bad input changed state"
    );
}

#[tokio::test]
async fn bad_parameters_and_routes() {
    let api = TestApi::new().await;
    let key = api.member("eve@example.com").await;
    let r = api
        .call(Method::GET, "/v1/workspaces/not-an-id", Some(&key), None)
        .await;
    r.assert_error(400, "invalid_parameter");
    assert_eq!(r.body["field"], "workspace_id");
    let r = api
        .call(
            Method::GET,
            "/v1/workspaces/tpl_0190f5d2a3b47c1e8e2f6a9b0c1d2e3f",
            Some(&key),
            None,
        )
        .await;
    r.assert_error(400, "invalid_parameter");
    api.call(
        Method::GET,
        "/v1/workspaces?cursor=garbage",
        Some(&key),
        None,
    )
    .await
    .assert_error(400, "invalid_cursor");
    let r = api
        .call(Method::GET, "/v1/workspaces?limit=0", Some(&key), None)
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["field"], "limit");
    let r = api
        .call(Method::GET, "/v1/workspaces?limit=lots", Some(&key), None)
        .await;
    r.assert_error(400, "invalid_parameter");
    let r = api
        .call(Method::GET, "/v1/workspaces?colour=red", Some(&key), None)
        .await;
    r.assert_error(400, "invalid_parameter");
    let r = api
        .call(
            Method::GET,
            "/v1/templates?category=cobol",
            Some(&key),
            None,
        )
        .await;
    r.assert_error(400, "invalid_parameter");
    api.call(
        Method::GET,
        "/v1/templates/Not%20A%20Name",
        Some(&key),
        None,
    )
    .await
    .assert_error(400, "invalid_parameter");
    api.call(Method::GET, "/v1/nothing-here", Some(&key), None)
        .await
        .assert_error(404, "route_not_found");
    api.call(Method::PUT, "/v1/workspaces", Some(&key), None)
        .await
        .assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn missing_invalid_revoked_and_expired_keys() {
    let clock = Arc::new(ManualClock::at_unix_millis(1_800_000_000_000));
    let api = TestApi::with_clock(clock.clone()).await;
    let key = api.member("fay@example.com").await;

    api.call(Method::GET, "/v1/workspaces", None, None)
        .await
        .assert_error(401, "missing_api_key");
    api.call(Method::GET, "/v1/workspaces", Some("garbage"), None)
        .await
        .assert_error(401, "invalid_api_key");
    let mut typo = key.clone();
    let last = if typo.ends_with('A') { "B" } else { "A" };
    typo.replace_range(typo.len() - 1.., last);
    let r = api
        .call(Method::GET, "/v1/workspaces", Some(&typo), None)
        .await;
    r.assert_error(401, "invalid_api_key");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("checksum"),
        "{}",
        r.text
    );
    let unknown = onmemos_core::passport::Secret::generate();
    api.call(Method::GET, "/v1/workspaces", Some(unknown.expose()), None)
        .await
        .assert_error(401, "invalid_api_key");
    let basic = Request::builder()
        .uri("/v1/workspaces")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .unwrap_or_default();
    api.send(basic).await.assert_error(401, "invalid_api_key");
    let x_api_key = Request::builder()
        .uri("/v1/workspaces")
        .header("x-api-key", &key)
        .body(Body::empty())
        .unwrap_or_default();
    assert_eq!(api.send(x_api_key).await.status.as_u16(), 200);

    let expires_at = clock.now_plus(Duration::hours(1));
    let r = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "short", "expires_at": expires_at})),
        )
        .await;
    let short = r.body["secret"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        api.call(Method::GET, "/v1/workspaces", Some(&short), None)
            .await
            .status
            .as_u16(),
        200
    );
    clock.advance(Duration::hours(1));
    api.call(Method::GET, "/v1/workspaces", Some(&short), None)
        .await
        .assert_error(401, "api_key_expired");

    let past = json!({"name": "past", "expires_at": clock.now_plus(Duration::seconds(-1))});
    let r = api
        .call(Method::POST, "/v1/api-keys", Some(&key), Some(past))
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["field"], "expires_at");
}

#[tokio::test]
async fn last_used_is_written_at_most_once_a_minute() {
    let clock = Arc::new(ManualClock::at_unix_millis(1_800_000_000_000));
    let api = TestApi::with_clock(clock.clone()).await;
    let key = api.member("gus@example.com").await;
    let last_used = |r: &common::Reply| {
        r.body["items"][0]["last_used_at"]
            .as_str()
            .map(str::to_owned)
    };
    let first = last_used(
        &api.call(Method::GET, "/v1/api-keys", Some(&key), None)
            .await,
    );
    assert!(first.is_some(), "first use not recorded");
    clock.advance(Duration::seconds(59));
    let r = api
        .call(Method::GET, "/v1/api-keys", Some(&key), None)
        .await;
    assert_eq!(last_used(&r), first, "written again within a minute");
    clock.advance(Duration::seconds(1));
    let r = api
        .call(Method::GET, "/v1/api-keys", Some(&key), None)
        .await;
    assert_ne!(last_used(&r), first, "not written after a minute");
}

/// serde reads a struct from a positional array too; no body of the API is an array.
#[tokio::test]
async fn bodies_must_be_json_objects() {
    let api = TestApi::new().await;
    let key = api.member("arrays@example.com").await;
    for body in [
        r#"["name","desc",{}]"#,
        r#"["lab"]"#,
        "42",
        r#""lab""#,
        "null",
    ] {
        let r = api
            .send(raw(
                Method::POST,
                "/v1/workspaces",
                &key,
                "application/json",
                body,
            ))
            .await;
        r.assert_error(400, "invalid_request");
        assert!(r.text.contains("JSON object"), "{body}: {}", r.text);
    }
    let listed = api
        .call(Method::GET, "/v1/workspaces", Some(&key), None)
        .await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0));
}

/// JSON has one kind of number: an integer written `3600.0` is accepted where an integer is
/// expected (JSON Schema counts it as one); `3600.5` is refused naming the field.
#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_integers() {
    let api = TestApi::new().await;
    let key = api.member("numbers@example.com").await;
    let estimate = |duration: &str| {
        raw(
            Method::POST,
            "/v1/estimates",
            &key,
            "application/json",
            format!(r#"{{"template": "python", "duration_secs": {duration}}}"#),
        )
    };
    let whole = api.send(estimate("3600")).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let written_as_float = api.send(estimate("3600.0")).await;
    assert_eq!(written_as_float.status, 200, "{}", written_as_float.text);
    assert_eq!(written_as_float.body, whole.body);
    let fractional = api.send(estimate("3600.5")).await;
    fractional.assert_error(400, "invalid_request");
    assert_eq!(
        fractional.body["field"], "duration_secs",
        "{}",
        fractional.text
    );
}
