//! What the benchmark examples share: the server on the embedded defaults with a first admin
//! and a running session. Included with `#[path = "support/bench_server.rs"] mod bench_server;`.

use onmemos::client::Client;
use onmemos::client::api::{CreateSession, CreateUser, CreateWorkspace, CreditRequest};
use onmemos::client::id::SessionId;
use onmemos::client::model::Role;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The server with `config` on its own runtime (2 workers), over the embedded defaults in
/// `dir`; its URL, an admin key, and a running session of that admin.
pub fn server(
    dir: &std::path::Path,
    config: onmemos::server::ServerConfig,
) -> Result<(String, String, SessionId), Error> {
    let dir = dir.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("onmemos-server")
            .enable_all()
            .build();
        let Ok(runtime) = runtime else { return };
        runtime.block_on(async move {
            let started = async {
                use onmemos::backends::{compute, db};
                let url = format!("sqlite://{}", dir.join("onmemos.db").display());
                let engine = onmemos::Engine::builder(db::connect(&url).await?)
                    .with_compute(compute::connect("local://", &dir).await?)
                    .build()
                    .await?;
                let admin = engine
                    .users()
                    .bootstrap(CreateUser {
                        email: "bench@example.com".into(),
                        name: None,
                        role: Some(Role::Admin),
                    })
                    .await?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let url = format!("http://{}", listener.local_addr()?);
                let app = onmemos::server::router_with(engine, config);
                tokio::spawn(axum::serve(listener, app).into_future());
                Ok::<_, Error>((url, admin))
            };
            match started.await {
                Ok((url, admin)) => {
                    let _ = tx.send(Ok((url, admin.user.id, admin.api_key.secret)));
                    std::future::pending::<()>().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let (url, user, key) = rx.recv()??;
    // The session is made through the API on a throwaway runtime.
    let id = tokio::runtime::Runtime::new()?.block_on(async {
        let client = Client::builder().base_url(&url).api_key(&key).build()?;
        client
            .credits()
            .grant(&CreditRequest {
                user_id: user,
                amount_micros: 100_000_000,
                priority: None,
                expires_at: None,
                reference: None,
            })
            .await?;
        let ws = client
            .workspaces()
            .create(&CreateWorkspace {
                name: "bench".into(),
                description: None,
                env: Default::default(),
            })
            .await?;
        let session = client
            .sessions()
            .create(&CreateSession {
                workspace_id: ws.id,
                template: "python".into(),
                limits: Default::default(),
                placement: Default::default(),
                env: Default::default(),
            })
            .await?;
        Ok::<_, Error>(session.id)
    })?;
    Ok((url, key, id))
}
