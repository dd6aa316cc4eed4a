//! Helpers for router tests: an engine on a fresh SQLite file and `oneshot` calls.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use onmemos_backends::db::SqlDatabase;
use onmemos_core::Engine;
use onmemos_core::api::CreateUser;
use onmemos_core::clock::{Clock, SystemClock};
use onmemos_core::model::Role;
use serde_json::Value;
use tower::ServiceExt;

pub struct TestApi {
    pub router: Router,
    pub engine: Engine,
    pub admin_key: String,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApi {
    pub async fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock)).await
    }

    pub async fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::with(clock, onmemos_server::ServerConfig::default()).await
    }

    pub async fn with(clock: Arc<dyn Clock>, config: onmemos_server::ServerConfig) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let engine = engine_in(dir.path(), clock, onmemos_core::EngineConfig::default()).await;
        Self::over_in(engine, config, dir).await
    }

    /// The router over an engine the test built, with a first admin.
    pub async fn over(engine: Engine) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        Self::over_in(engine, onmemos_server::ServerConfig::default(), dir).await
    }

    async fn over_in(
        engine: Engine,
        config: onmemos_server::ServerConfig,
        dir: tempfile::TempDir,
    ) -> Self {
        let admin = engine
            .users()
            .bootstrap(CreateUser {
                email: "root@example.com".into(),
                name: None,
                role: Some(Role::Admin),
            })
            .await
            .unwrap_or_else(|e| panic!("bootstrap: {e}"));
        let router = onmemos_server::router_with(engine.clone(), config);
        Self {
            router,
            engine,
            admin_key: admin.api_key.secret,
            _dir: dir,
        }
    }

    /// The directory holding the database and the files.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Creates a member through the API and returns their key.
    pub async fn member(&self, email: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/users",
                Some(&self.admin_key),
                Some(serde_json::json!({ "email": email })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "create user: {}", r.text);
        r.body["api_key"]["secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap_or_else(|e| panic!("request: {e}")))
            .await
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {});
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }
}

impl Reply {
    /// Asserts an error reply: status, code, and a request id in both body and header.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert_eq!(self.body["code"], code, "code of {}", self.text);
        let id = self.body["request_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "no request id in {}", self.text);
        let header = self
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        assert_eq!(header, Some(id), "request id header and body differ");
        assert!(
            !self.body["message"].as_str().unwrap_or_default().is_empty(),
            "empty message"
        );
    }
}

/// Serves the router over `engine` on a loopback port; returns its address.
pub async fn serve(engine: Engine) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let app = onmemos_server::router(engine);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A member with `credits` micro-credits: their API key.
pub async fn funded_member(engine: &Engine, email: &str, credits: i64) -> String {
    use onmemos_core::model::{GrantSource, LedgerOp, TransferId};
    let created = engine
        .users()
        .bootstrap(CreateUser {
            email: email.into(),
            name: None,
            role: Some(Role::Member),
        })
        .await
        .unwrap_or_else(|e| panic!("user: {e}"));
    engine
        .credits()
        .execute(&LedgerOp::Grant {
            id: TransferId::random("grant"),
            user: created.user.id,
            amount: credits,
            source: GrantSource::Purchase,
            priority: 0,
            expires_at: None,
            reference: None,
        })
        .await
        .unwrap_or_else(|e| panic!("grant: {e}"));
    created.api_key.secret
}

/// An engine over a new SQLite file in `dir`, with unsandboxed local compute and the local
/// file store there too.
pub async fn engine_in(
    dir: &std::path::Path,
    clock: Arc<dyn Clock>,
    config: onmemos_core::EngineConfig,
) -> Engine {
    let db = SqlDatabase::open(&format!("sqlite://{}", dir.join("t.db").display()))
        .await
        .unwrap_or_else(|e| panic!("db: {e}"));
    let compute = onmemos_backends::compute::LocalCompute::unsandboxed(dir.join("compute"));
    let storage = onmemos_backends::storage::LocalStorage::open(&dir.join("storage"))
        .unwrap_or_else(|e| panic!("storage: {e}"));
    let optimizer =
        onmemos_optimizer::CostOptimizer::new().unwrap_or_else(|e| panic!("optimizer: {e}"));
    Engine::builder(Arc::new(db))
        .with_compute(Arc::new(compute))
        .with_storage(Arc::new(storage))
        .with_optimizer(Arc::new(optimizer))
        .with_clock(clock)
        .with_config(config)
        .build()
        .await
        .unwrap_or_else(|e| panic!("engine: {e}"))
}
