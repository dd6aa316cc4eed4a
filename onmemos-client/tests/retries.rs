//! Fault injection: a wiremock server answering 500/503/429 (with and without `Retry-After`),
//! slow answers, and a raw socket that drops connections. The call succeeds within the policy,
//! waits at least `Retry-After`, never retries a `PATCH`, and a `POST` keeps one idempotency
//! key over its attempts.

use std::time::{Duration, Instant};

use onmemos_client::api::UpdateWorkspace;
use onmemos_client::{Client, ErrorKind, RequestTimeout, RetryPolicy};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HEALTH: &str = r#"{"status":"ok","version":"test"}"#;

fn client(url: &str, policy: RetryPolicy) -> Client {
    Client::builder()
        .base_url(url)
        .api_key("onm_test")
        .retry_policy(policy)
        .request_timeout(RequestTimeout(Duration::from_millis(500)))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

fn fast() -> RetryPolicy {
    RetryPolicy::default().with_initial_delay(Duration::from_millis(10))
}

fn error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "message": "injected", "request_id": "req_1"
    }))
}

/// Mounts `first` for the first `n` requests to `route`, then `then`.
async fn sequence(
    server: &MockServer,
    verb: &str,
    route: &str,
    first: Vec<ResponseTemplate>,
    then: ResponseTemplate,
) {
    for (i, r) in first.into_iter().enumerate() {
        Mock::given(method(verb))
            .and(path(route))
            .respond_with(r)
            .up_to_n_times(1)
            .with_priority(u8::try_from(i + 1).unwrap_or(u8::MAX))
            .mount(server)
            .await;
    }
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(then)
        .with_priority(u8::MAX)
        .mount(server)
        .await;
}

fn healthy() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(HEALTH, "application/json")
}

/// `/healthz` answers `first`, one each, then `then`.
async fn health_after(server: &MockServer, first: Vec<ResponseTemplate>, then: ResponseTemplate) {
    sequence(server, "GET", "/healthz", first, then).await;
}

/// `GET /healthz` at `url`, expected to fail.
async fn health_fails(url: &str, policy: RetryPolicy) -> onmemos_client::Error {
    client(url, policy)
        .health()
        .await
        .err()
        .unwrap_or_else(|| panic!("GET /healthz succeeded"))
}

/// `POST /v1/estimates` at `url`, expected to fail.
async fn quote_fails(url: &str) -> onmemos_client::Error {
    let request = serde_json::from_value(json!({"template": "python", "duration_secs": 60}))
        .unwrap_or_else(|e| panic!("request: {e}"));
    client(url, fast())
        .estimates()
        .quote(&request)
        .await
        .err()
        .unwrap_or_else(|| panic!("POST /v1/estimates succeeded"))
}

async fn received(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = MockServer::start().await;
    health_after(
        &server,
        vec![
            error(500, "internal"),
            error(503, "unavailable"),
            error(502, "internal"),
        ],
        healthy(),
    )
    .await;
    let health = client(&server.uri(), fast())
        .health()
        .await
        .unwrap_or_else(|e| panic!("health: {e}"));
    assert_eq!(health.version, "test");
    assert_eq!(received(&server).await.len(), 4);
}

#[tokio::test]
async fn retry_after_is_waited_for_and_429_without_it_backs_off() {
    let server = MockServer::start().await;
    health_after(
        &server,
        vec![
            error(429, "rate_limited").insert_header("retry-after", "1"),
            error(429, "rate_limited"),
        ],
        healthy(),
    )
    .await;
    let started = Instant::now();
    client(&server.uri(), fast())
        .health()
        .await
        .unwrap_or_else(|e| panic!("health: {e}"));
    let requests = received(&server).await;
    assert_eq!(requests.len(), 3);
    // The second request came no sooner than the Retry-After of the first answer.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_gives_up_at_once() {
    let server = MockServer::start().await;
    health_after(
        &server,
        vec![],
        error(503, "unavailable").insert_header("retry-after", "60"),
    )
    .await;
    let policy = fast().with_total_budget(Duration::from_secs(2));
    let e = health_fails(&server.uri(), policy).await;
    assert_eq!(e.status(), Some(503));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(received(&server).await.len(), 1);
}

#[tokio::test]
async fn attempts_run_out_with_the_last_error() {
    let server = MockServer::start().await;
    health_after(&server, vec![], error(503, "unavailable")).await;
    let e = health_fails(&server.uri(), fast().with_max_attempts(3)).await;
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(e.request_id(), Some("req_1"));
    assert_eq!(received(&server).await.len(), 3);
}

#[tokio::test]
async fn a_patch_is_never_retried() {
    let server = MockServer::start().await;
    let id = "ws_0190a0a0000070008000000000000000";
    let route = format!("/v1/workspaces/{id}");
    sequence(&server, "PATCH", &route, vec![], error(503, "unavailable")).await;
    let ws = id.parse().unwrap_or_else(|e| panic!("id: {e:?}"));
    let e = client(&server.uri(), fast())
        .workspaces()
        .update(ws, &UpdateWorkspace::default())
        .await
        .err()
        .unwrap_or_else(|| panic!("succeeded against a 503"));
    assert_eq!(e.status(), Some(503));
    assert_eq!(received(&server).await.len(), 1, "a PATCH was sent twice");
}

#[tokio::test]
async fn a_post_keeps_one_idempotency_key_over_its_attempts() {
    let server = MockServer::start().await;
    sequence(
        &server,
        "POST",
        "/v1/estimates",
        vec![error(503, "unavailable"), error(500, "internal")],
        error(422, "invalid_input"),
    )
    .await;
    let e = quote_fails(&server.uri()).await;
    assert_eq!(e.kind(), ErrorKind::Validation, "the 422 is final");
    let keys: Vec<String> = received(&server)
        .await
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        !keys[0].is_empty() && keys.iter().all(|k| k == &keys[0]),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_retry_succeeds() {
    let server = MockServer::start().await;
    health_after(
        &server,
        vec![
            ResponseTemplate::new(200)
                .set_body_raw(HEALTH, "application/json")
                .set_delay(Duration::from_secs(3)),
        ],
        healthy(),
    )
    .await;
    client(&server.uri(), fast())
        .health()
        .await
        .unwrap_or_else(|e| panic!("health: {e}"));
    assert_eq!(received(&server).await.len(), 2);
    // Without retries the same slow answer is a timeout.
    let slow = MockServer::start().await;
    health_after(
        &slow,
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
    )
    .await;
    let err = health_fails(&slow.uri(), RetryPolicy::none()).await;
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let serving = tokio::spawn(async move {
        // The first connection is closed as soon as the request arrives, with no answer.
        let (mut first, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 1024];
        let _ = first.read(&mut buf).await;
        drop(first);
        let (mut second, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let _ = second.read(&mut buf).await;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{HEALTH}",
            HEALTH.len()
        );
        second
            .write_all(answer.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        2
    });
    let health = client(&url, fast())
        .health()
        .await
        .unwrap_or_else(|e| panic!("health: {e}"));
    assert_eq!(health.status, "ok");
    assert_eq!(
        serving.await.unwrap_or_default(),
        2,
        "two connections served"
    );
}

#[tokio::test]
async fn a_post_still_in_flight_is_retried_and_a_plain_conflict_is_not() {
    let server = MockServer::start().await;
    sequence(
        &server,
        "POST",
        "/v1/estimates",
        vec![error(409, "idempotency_in_flight")],
        error(409, "conflict"),
    )
    .await;
    let e = quote_fails(&server.uri()).await;
    assert_eq!(e.code(), Some("conflict"));
    assert_eq!(
        received(&server).await.len(),
        2,
        "in flight: once more; conflict: final"
    );
}
