//! Credits over HTTP, and `Idempotency-Key` on POST requests.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestApi;
use serde_json::{Value, json};

fn post(path: &str, key: &str, idem: Option<&str>, body: Value) -> Request<Body> {
    let mut r = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json");
    if let Some(k) = idem {
        r = r.header("idempotency-key", k);
    }
    r.body(Body::from(body.to_string())).unwrap_or_default()
}

async fn user_id(api: &TestApi, key: &str) -> String {
    let me = api.call(Method::GET, "/v1/me", Some(key), None).await;
    me.body["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn purchases_are_idempotent_and_show_in_the_balance() {
    let api = TestApi::new().await;
    let member = api.member("payer@example.com").await;
    let uid = user_id(&api, &member).await;
    let body = json!({"user_id": uid, "amount_micros": 5_000_000, "reference": "invoice 17"});

    let first = api
        .send(post(
            "/v1/credits/purchases",
            &api.admin_key,
            Some("inv-17"),
            body.clone(),
        ))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["kind"], "grant");
    assert_eq!(first.body["source"], "purchase");
    let again = api
        .send(post(
            "/v1/credits/purchases",
            &api.admin_key,
            Some("inv-17"),
            body.clone(),
        ))
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(
        again.body, first.body,
        "a replay must return the stored response"
    );
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );

    let other = json!({"user_id": uid, "amount_micros": 6_000_000});
    let reused = api
        .send(post(
            "/v1/credits/purchases",
            &api.admin_key,
            Some("inv-17"),
            other,
        ))
        .await;
    reused.assert_error(422, "idempotency_key_reused");

    let b = api
        .call(Method::GET, "/v1/credits", Some(&member), None)
        .await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.text);
    assert_eq!(
        b.body["available"], 5_000_000,
        "the purchase counted once: {}",
        b.text
    );
    assert_eq!(b.body["credits_posted"], 5_000_000);
    assert_eq!(b.body["grants"][0]["source"], "purchase");

    let promo =
        json!({"user_id": uid, "amount_micros": 1_000_000, "expires_at": "2099-01-01T00:00:00Z"});
    let g = api
        .send(post("/v1/credits/grants", &api.admin_key, None, promo))
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.text);
    let b = api
        .call(Method::GET, "/v1/credits", Some(&member), None)
        .await;
    assert_eq!(b.body["available"], 6_000_000);
    assert_eq!(
        b.body["grants"][0]["source"], "promotion",
        "free credit is spent first: {}",
        b.text
    );

    let t = api
        .call(
            Method::GET,
            "/v1/credits/transfers?kind=grant&limit=1",
            Some(&member),
            None,
        )
        .await;
    assert_eq!(t.body["items"].as_array().map(Vec::len), Some(1));
    assert!(t.body["next_cursor"].is_string());
    let p = api
        .call(Method::GET, "/v1/pricing", Some(&member), None)
        .await;
    assert_eq!(p.body["vcpu_hour"], 40_000);
}

#[tokio::test]
async fn bad_credit_requests_are_refused_and_change_nothing() {
    let api = TestApi::new().await;
    let member = api.member("m@example.com").await;
    let uid = user_id(&api, &member).await;
    for amount in [
        json!(0),
        json!(-1),
        json!(1_000_000_000_000_001_i64),
        json!(9_223_372_036_854_775_807_i64),
    ] {
        let r = api
            .send(post(
                "/v1/credits/purchases",
                &api.admin_key,
                None,
                json!({"user_id": uid, "amount_micros": amount}),
            ))
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["field"], "amount_micros", "{}", r.text);
    }
    let r = api
        .send(post(
            "/v1/credits/purchases",
            &api.admin_key,
            None,
            json!({"user_id": uid, "amount_micros": 1.5}),
        ))
        .await;
    r.assert_error(400, "invalid_request");
    let r = api
        .send(post(
            "/v1/credits/purchases",
            &api.admin_key,
            None,
            json!({"user_id": uid, "amount_micros": "12"}),
        ))
        .await;
    r.assert_error(400, "invalid_request");
    let ghost = "usr_0190f5d2a3b47c1e8e2f6a9b0c1d2e3f";
    api.send(post(
        "/v1/credits/grants",
        &api.admin_key,
        None,
        json!({"user_id": ghost, "amount_micros": 5}),
    ))
    .await
    .assert_error(404, "not_found");
    let past = json!({"user_id": uid, "amount_micros": 5, "expires_at": "2001-01-01T00:00:00Z"});
    let r = api
        .send(post("/v1/credits/grants", &api.admin_key, None, past))
        .await;
    assert_eq!(r.body["field"], "expires_at", "{}", r.text);
    let r = api
        .send(post(
            "/v1/credits/purchases",
            &member,
            None,
            json!({"user_id": uid, "amount_micros": 5}),
        ))
        .await;
    r.assert_error(403, "insufficient_scope");
    let r = api
        .send(post(
            "/v1/credits/purchases",
            &api.admin_key,
            Some("bad key with spaces"),
            json!({"user_id": uid, "amount_micros": 5}),
        ))
        .await;
    r.assert_error(400, "invalid_request");
    let b = api
        .call(Method::GET, "/v1/credits", Some(&member), None)
        .await;
    assert_eq!(
        b.body["credits_posted"], 0,
        "a refused request changed the balance: {}",
        b.text
    );
    let t = api
        .call(Method::GET, "/v1/credits/transfers", Some(&member), None)
        .await;
    assert_eq!(t.body["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn every_post_honours_idempotency_keys() {
    let api = TestApi::new().await;
    let member = api.member("w@example.com").await;
    let body = json!({"name": "once"});
    let a = api
        .send(post("/v1/workspaces", &member, Some("ws-1"), body.clone()))
        .await;
    let b = api
        .send(post("/v1/workspaces", &member, Some("ws-1"), body.clone()))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(
        a.body["id"], b.body["id"],
        "the replay created a second workspace"
    );
    let listed = api
        .call(Method::GET, "/v1/workspaces", Some(&member), None)
        .await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));

    // A refused request is stored too: the replay gets the same refusal.
    let conflict_a = api
        .send(post("/v1/workspaces", &member, Some("ws-2"), body.clone()))
        .await;
    conflict_a.assert_error(409, "conflict");
    let conflict_b = api
        .send(post("/v1/workspaces", &member, Some("ws-2"), body.clone()))
        .await;
    assert_eq!(conflict_b.body, conflict_a.body);

    // Keys are per API key: another user's identical key is independent.
    let other = api.member("x@example.com").await;
    let c = api
        .send(post("/v1/workspaces", &other, Some("ws-1"), body.clone()))
        .await;
    assert_eq!(c.status, StatusCode::CREATED);
    assert_ne!(c.body["id"], a.body["id"]);

    // The same JSON with other spacing and key order is the same request.
    let spaced = Request::builder()
        .method(Method::POST)
        .uri("/v1/workspaces")
        .header("authorization", format!("Bearer {member}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "ws-1")
        .body(Body::from("{ \"name\" :\n  \"once\" }"))
        .unwrap_or_default();
    let replayed = api.send(spaced).await;
    assert_eq!(replayed.status, StatusCode::CREATED, "{}", replayed.text);
    assert_eq!(
        replayed
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(replayed.body["id"], a.body["id"]);

    // A duplicate while the first is still running: an exec that takes a while.
    let funded = common::funded_member(&api.engine, "slow@example.com", 10_000_000).await;
    let ws = api
        .send(post(
            "/v1/workspaces",
            &funded,
            None,
            json!({"name": "slow"}),
        ))
        .await;
    let session = api
        .send(post(
            "/v1/sessions",
            &funded,
            None,
            json!({"workspace_id": ws.body["id"], "template": "python"}),
        ))
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    let exec = format!(
        "/v1/sessions/{}/exec",
        session.body["id"].as_str().unwrap_or_default()
    );
    let slow = json!({"command": ["sleep", "2"]});
    let first = api.send(post(&exec, &funded, Some("in-flight"), slow.clone()));
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        api.send(post(&exec, &funded, Some("in-flight"), slow.clone()))
            .await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    second.assert_error(409, "idempotency_in_flight");
}

/// A replay is an answer to the same API key with the same authority: a narrower key reusing
/// a wider key's `Idempotency-Key` gets nothing of the wider key's answer (here: a new key's
/// secret), and the stored answer holds no secret in plaintext.
#[tokio::test]
async fn replays_belong_to_the_key_that_made_them_and_store_no_secret() {
    let api = TestApi::new().await;
    let member = api.member("keys@example.com").await;
    let create = json!({"name": "ci", "scopes": ["workspaces:read"]});
    let narrow = api
        .send(post("/v1/api-keys", &member, Some("k-1"), create.clone()))
        .await;
    assert_eq!(narrow.status, StatusCode::CREATED, "{}", narrow.text);
    let narrow_secret = narrow.body["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(narrow_secret.starts_with("onm_"), "{}", narrow.text);

    // The narrow key replays the wide key's request: it is its own request, refused by scope.
    let stolen = api
        .send(post(
            "/v1/api-keys",
            &narrow_secret,
            Some("k-1"),
            create.clone(),
        ))
        .await;
    stolen.assert_error(403, "insufficient_scope");
    assert!(stolen.headers.get("idempotent-replayed").is_none());
    assert!(!stolen.text.contains("onm_"), "{}", stolen.text);

    // The key that made it gets its whole answer back, secret included.
    let again = api
        .send(post("/v1/api-keys", &member, Some("k-1"), create.clone()))
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["secret"].as_str(), Some(narrow_secret.as_str()));
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );

    // Nothing the server wrote holds the secret: keys are stored as digests, answers sealed.
    let mut found = Vec::new();
    for entry in std::fs::read_dir(api.data_dir())
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        if bytes
            .windows(narrow_secret.len())
            .any(|w| w == narrow_secret.as_bytes())
        {
            found.push(entry.path());
        }
    }
    assert_eq!(
        found,
        Vec::<std::path::PathBuf>::new(),
        "the secret is stored in plaintext"
    );
}

#[tokio::test]
async fn idempotency_keys_must_be_one_and_not_empty() {
    let api = TestApi::new().await;
    let member = api.member("twice@example.com").await;
    for values in [vec![""], vec!["a", "b"], vec!["a", "a"]] {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/v1/workspaces")
            .header("authorization", format!("Bearer {member}"))
            .header("content-type", "application/json");
        for v in &values {
            r = r.header("idempotency-key", *v);
        }
        let reply = api
            .send(
                r.body(Body::from(json!({"name": "w"}).to_string()))
                    .unwrap_or_default(),
            )
            .await;
        reply.assert_error(400, "invalid_request");
        assert_eq!(reply.body["field"], "Idempotency-Key", "{}", reply.text);
    }
    let listed = api
        .call(Method::GET, "/v1/workspaces", Some(&member), None)
        .await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_narrow_key_cannot_revoke_a_wider_one() {
    let api = TestApi::new().await;
    let wide = api.member("wide@example.com").await;
    let narrow = api
        .send(post(
            "/v1/api-keys",
            &wide,
            None,
            json!({"name": "rotator", "scopes": ["keys:read", "keys:write"]}),
        ))
        .await;
    assert_eq!(narrow.status, StatusCode::CREATED, "{}", narrow.text);
    let narrow_secret = narrow.body["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let keys = api
        .call(Method::GET, "/v1/api-keys", Some(&wide), None)
        .await;
    let wide_id = keys.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["name"] != "rotator")
        .and_then(|k| k["id"].as_str())
        .unwrap_or_else(|| panic!("no other key in {}", keys.text))
        .to_owned();
    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{wide_id}"),
            Some(&narrow_secret),
            None,
        )
        .await;
    r.assert_error(403, "insufficient_scope");
    let still = api.call(Method::GET, "/v1/me", Some(&wide), None).await;
    assert_eq!(still.status, StatusCode::OK, "the wide key still works");
    // Its own kind it may revoke (itself included).
    let own = narrow.body["key"]["id"].as_str().unwrap_or_default();
    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{own}"),
            Some(&narrow_secret),
            None,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
}

/// A key without a route's authority is refused (403) before the route reads its body: a bad
/// body tells it nothing about what the body should hold.
#[tokio::test]
async fn authority_is_checked_before_the_body_is_read() {
    let api = TestApi::new().await;
    let member = api.member("reader@example.com").await;
    let reader = api
        .send(post(
            "/v1/api-keys",
            &member,
            None,
            json!({"name": "reader", "scopes": ["workspaces:read"]}),
        ))
        .await;
    assert_eq!(reader.status, StatusCode::CREATED, "{}", reader.text);
    let reader = reader.body["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bad_bodies = [
        json!({"nam": 1}),
        json!({"name": 7, "scopes": "x"}),
        json!({}),
    ];
    for path in [
        "/v1/workspaces",
        "/v1/sessions",
        "/v1/templates",
        "/v1/api-keys",
        "/v1/users",
        "/v1/credits/purchases",
        "/v1/credits/grants",
    ] {
        for body in &bad_bodies {
            let r = api.send(post(path, &reader, None, body.clone())).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} {body}: {}", r.text);
            assert!(
                !r.text.contains("unknown field") && !r.text.contains("missing field"),
                "{path}: {}",
                r.text
            );
        }
    }
    // A member's full key on an admin route: 403 too, whatever the body.
    let r = api
        .send(post(
            "/v1/credits/purchases",
            &member,
            None,
            json!({"x": 1}),
        ))
        .await;
    r.assert_error(403, "insufficient_scope");
    // With the authority, the same bad body gets its validation answer.
    let r = api
        .send(post("/v1/workspaces", &member, None, json!({"nam": 1})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

/// A purchase past the most one account may hold is refused (422 `limit_exceeded`, field
/// `amount`) and changes nothing; others can still buy.
#[tokio::test]
async fn purchases_past_the_balance_cap_are_refused_and_change_nothing() {
    let api = TestApi::new().await;
    let ada = api.member("ada@example.com").await;
    let bob = api.member("bob@example.com").await;
    let (ada_id, bob_id) = (user_id(&api, &ada).await, user_id(&api, &bob).await);
    let buy = |user: &str, amount: i64| {
        post(
            "/v1/credits/purchases",
            &api.admin_key,
            None,
            json!({"user_id": user, "amount_micros": amount}),
        )
    };
    let max = onmemos_core::model::MAX_BALANCE;
    let r = api.send(buy(&ada_id, max)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for _ in 0..3 {
        let r = api.send(buy(&ada_id, 1)).await;
        r.assert_error(422, "limit_exceeded");
        assert_eq!(r.body["field"], "amount_micros", "{}", r.text);
    }
    let balance = api.call(Method::GET, "/v1/credits", Some(&ada), None).await;
    assert_eq!(balance.body["available"], json!(max), "{}", balance.text);
    let r = api.send(buy(&bob_id, 1_000)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}
