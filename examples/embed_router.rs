//! OnMemOS inside your own axum service: its API mounted under `/onmemos`, next to your own
//! routes with your own authentication, all on one listener and one engine.
//!
//! `cargo run --example embed_router`
//!
//! The example starts the service on a loopback port, calls each part the way a client would,
//! checks the answers and exits. Your routes can use the same [`Engine`] directly: here
//! `/internal/usage` reports every user's balance to your operators.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use onmemos::Engine;
use onmemos::core::api::{CreateUser, CreateWorkspace, ListParams};
use onmemos::core::model::Role;
use onmemos::core::{Principal, model::User};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What your own routes share.
#[derive(Clone)]
struct Service {
    engine: Engine,
    /// The operator who acts for your internal routes.
    operator: Arc<User>,
    /// Your own credential for them (in real life: your SSO, mTLS, …).
    internal_token: Arc<str>,
}

/// Your own authentication, on your own routes only: OnMemOS's API keeps its API keys.
async fn require_internal_token(
    State(service): State<Service>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get("x-internal-token")
        .and_then(|v| v.to_str().ok());
    if presented != Some(&*service.internal_token) {
        return (
            StatusCode::UNAUTHORIZED,
            "internal routes need x-internal-token",
        )
            .into_response();
    }
    next.run(request).await
}

/// `GET /internal/usage`: every user's available credits, straight from the engine.
async fn usage(State(service): State<Service>) -> Result<Json<serde_json::Value>, StatusCode> {
    let operator = Principal::for_user(&service.operator);
    let users = service
        .engine
        .users()
        .list(&operator, &ListParams::first(100))
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let mut rows = Vec::new();
    for user in &users.items {
        let balance = service
            .engine
            .credits()
            // A program may act as any user directly (no key involved).
            .balance(&Principal::for_user(user))
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        rows.push(serde_json::json!({ "email": user.email, "available": balance.available }));
    }
    Ok(Json(serde_json::json!({ "users": rows })))
}

/// Your application: your routes, your middleware, and OnMemOS under `/onmemos`.
fn app(service: Service) -> Router {
    let internal = Router::new()
        .route("/internal/usage", get(usage))
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            require_internal_token,
        ))
        .with_state(service.clone());
    Router::new()
        .route("/", get(|| async { "my service" }))
        .merge(internal)
        .nest("/onmemos", onmemos::server::router(service.engine.clone()))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = onmemos::backends::db::connect(&format!(
        "sqlite://{}",
        dir.path().join("onmemos.db").display()
    ))
    .await?;
    let engine = Engine::builder(db).build().await?;
    let admin = engine
        .users()
        .bootstrap(CreateUser {
            email: "ops@example.com".into(),
            name: None,
            role: Some(Role::Admin),
        })
        .await?;
    let service = Service {
        engine,
        operator: Arc::new(admin.user.clone()),
        internal_token: Arc::from("let-me-in"),
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, app(service)).into_future());
    println!("serving on {base}");

    // Your route.
    let http = reqwest::Client::new();
    let home = http.get(format!("{base}/")).send().await?.text().await?;
    assert_eq!(home, "my service");

    // OnMemOS, through its typed client, at the mount point.
    let client = onmemos::client::Client::builder()
        .base_url(format!("{base}/onmemos"))
        .api_key(admin.api_key.secret.clone())
        .build()?;
    let me = client.users().me().await?;
    let ws = client
        .workspaces()
        .create(&CreateWorkspace {
            name: "embedded".into(),
            description: None,
            env: Default::default(),
        })
        .await?;
    println!(
        "as {} through /onmemos: created workspace {}",
        me.email, ws.id
    );
    let health = http
        .get(format!("{base}/onmemos/healthz"))
        .send()
        .await?
        .status();
    assert_eq!(health, StatusCode::OK);

    // Your authentication guards your routes, not OnMemOS's (its keys guard those).
    let refused = http.get(format!("{base}/internal/usage")).send().await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let report: serde_json::Value = http
        .get(format!("{base}/internal/usage"))
        .header("x-internal-token", "let-me-in")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("/internal/usage: {report}");
    assert_eq!(report["users"][0]["email"], "ops@example.com");
    let with_our_token_only = http
        .get(format!("{base}/onmemos/v1/me"))
        .header("x-internal-token", "let-me-in")
        .send()
        .await?;
    assert_eq!(with_our_token_only.status(), StatusCode::UNAUTHORIZED);
    assert!(
        with_our_token_only
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json")),
        "OnMemOS answers its own JSON errors"
    );
    println!("ok: one listener, your routes and auth, OnMemOS under /onmemos");
    Ok(())
}
