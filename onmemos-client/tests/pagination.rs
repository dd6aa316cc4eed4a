//! Cursor pagination as a lazy stream, against a wiremock server: a page is fetched only when
//! its items are wanted, every page's items come once and in order, and a server that hands
//! back the cursor it was asked for is an error, not an endless loop.

use futures::{StreamExt, TryStreamExt};
use onmemos_client::api::ListParams;
use onmemos_client::id::{UserId, WorkspaceId};
use onmemos_client::model::Workspace;
use onmemos_client::{Client, ErrorKind, RetryPolicy};
use serde_json::json;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn workspace(name: &str) -> Workspace {
    let now = chrono::Utc::now();
    Workspace {
        id: WorkspaceId::new(),
        owner_id: UserId::new(),
        name: name.into(),
        description: None,
        env: Default::default(),
        created_at: now,
        updated_at: now,
    }
}

fn page(items: &[Workspace], next: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "items": items, "next_cursor": next }))
}

async fn client(server: &MockServer) -> Client {
    Client::builder()
        .base_url(server.uri())
        .api_key("onm_test")
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// Answers `GET /v1/workspaces` asking for `cursor` (none: the first page) with `answer`.
async fn on_page(server: &MockServer, cursor: Option<&str>, answer: ResponseTemplate) {
    let list = Mock::given(method("GET")).and(path("/v1/workspaces"));
    match cursor {
        Some(cursor) => list.and(query_param("cursor", cursor)),
        None => list.and(query_param_is_missing("cursor")),
    }
    .respond_with(answer)
    .mount(server)
    .await;
}

/// Everything the stream of every workspace yields, errors included.
async fn read_all(server: &MockServer) -> Vec<onmemos_client::Result<Workspace>> {
    client(server)
        .await
        .workspaces()
        .list_all(ListParams::default())
        .collect()
        .await
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

#[tokio::test]
async fn pages_are_fetched_only_as_their_items_are_read() {
    let server = MockServer::start().await;
    let all: Vec<_> = ["a", "b", "c", "d", "e"].map(workspace).into();
    on_page(&server, None, page(&all[0..2], Some("c1"))).await;
    on_page(&server, Some("c1"), page(&all[2..4], Some("c2"))).await;
    on_page(&server, Some("c2"), page(&all[4..], None)).await;
    let client = client(&server).await;

    let mut stream = client.workspaces().list_all(ListParams::first(2));
    assert_eq!(
        requests(&server).await,
        0,
        "nothing is fetched before a read"
    );
    let first = stream.try_next().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.map(|w| w.name).as_deref(), Some("a"));
    let second = stream.try_next().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.map(|w| w.name).as_deref(), Some("b"));
    assert_eq!(requests(&server).await, 1, "one page held both items");
    let third = stream.try_next().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(third.map(|w| w.name).as_deref(), Some("c"));
    assert_eq!(requests(&server).await, 2);
    drop(stream);

    let names: Vec<_> = client
        .workspaces()
        .list_all(ListParams::first(2))
        .map_ok(|w| w.name)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert_eq!(
        requests(&server).await,
        2 + 3,
        "three pages, each fetched once"
    );
}

#[tokio::test]
async fn a_cursor_handed_back_unchanged_ends_the_stream_with_an_error() {
    let server = MockServer::start().await;
    on_page(&server, None, page(&[workspace("a")], Some("same"))).await;
    on_page(&server, Some("same"), page(&[workspace("b")], Some("same"))).await;
    let read = read_all(&server).await;
    assert_eq!(read.len(), 3, "{read:?}");
    assert!(read[0].is_ok() && read[1].is_ok());
    let err = read[2].as_ref().err().unwrap_or_else(|| panic!("no error"));
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.to_string().contains("same"), "{err}");
}

#[tokio::test]
async fn an_error_on_a_later_page_is_an_item_of_the_stream() {
    let server = MockServer::start().await;
    on_page(&server, None, page(&[workspace("a")], Some("c1"))).await;
    let refused = ResponseTemplate::new(400).set_body_json(json!({
        "code": "invalid_request", "message": "cursor: not a cursor", "field": "cursor",
        "request_id": "req_2"
    }));
    on_page(&server, Some("c1"), refused).await;
    let read = read_all(&server).await;
    assert_eq!(read.len(), 2, "{read:?}");
    let err = read[1].as_ref().err().unwrap_or_else(|| panic!("no error"));
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.request_id(), Some("req_2"));
}
