//! Helpers for the tests that run the `onmemos` binary: commands in a data directory, a
//! server on a free port, its readiness, users made with `onmemos admin`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onmemos::client::Client;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_onmemos");

/// A loopback port nobody listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// `onmemos` working in `dir`, with its data in `dir/data`, untouched by the caller's
/// `ONMEMOS_*` client and config variables.
pub fn onmemos(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("ONMEMOS_API_KEY")
        .env_remove("ONMEMOS_URL")
        .env_remove("ONMEMOS_CONFIG")
        .env("ONMEMOS_DATA_DIR", dir.join("data"))
        .env("ONMEMOS_STATE_DIR", dir.join("state"));
    cmd
}

/// Starts `cmd serve` on `port`, its output discarded.
pub fn serve(mut cmd: Command, port: u16) -> Child {
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn onmemos serve: {e}"))
}

/// Waits until the server at `url` answers `/healthz` (30 s at most).
pub async fn wait_ready(url: &str) {
    let probe = Client::builder()
        .base_url(url)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe.health().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the server did not answer /healthz within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates a user with `cmd admin create-user` (on the database directly) and returns the
/// JSON it printed.
pub fn create_user(mut cmd: Command, email: &str, admin: bool) -> serde_json::Value {
    let mut args = vec!["--json", "admin", "create-user", "--email", email];
    if admin {
        args.push("--admin");
    }
    let out = cmd
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("admin create-user: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The secret of the key `create_user` printed.
pub fn secret(created: &serde_json::Value) -> String {
    created["api_key"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A client of `url` with `key`.
pub fn client(url: &str, key: &str) -> Client {
    Client::builder()
        .base_url(url)
        .api_key(key)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// `onmemos serve` running as a child process, killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its base URL.
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `onmemos serve` on a free port with its data in `dir`, once it answers.
pub async fn start(dir: &Path) -> Server {
    let port = free_port();
    let server = Server {
        child: serve(onmemos(dir), port),
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(&server.url).await;
    server
}

/// A listener on a free loopback port, and its `http://` URL.
pub async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    (listener, url)
}

/// Starts a session of the `python` template in `workspace`, with its defaults.
pub async fn start_session(
    client: &Client,
    workspace: onmemos::client::id::WorkspaceId,
) -> onmemos::client::model::Session {
    client
        .sessions()
        .create(&onmemos::client::api::CreateSession {
            workspace_id: workspace,
            template: "python".into(),
            limits: Default::default(),
            placement: Default::default(),
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("create session: {e}"))
}

/// `sh -c script`, as a command to exec.
pub fn sh(script: &str) -> onmemos::client::api::ExecCommand {
    onmemos::client::api::ExecCommand {
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: Default::default(),
        stdin: None,
        timeout_secs: None,
    }
}

/// An admin buys `micros` micro-credits for themselves.
pub async fn buy_credits(admin: &Client, micros: i64) {
    let me = admin
        .users()
        .me()
        .await
        .unwrap_or_else(|e| panic!("me: {e}"));
    admin
        .credits()
        .purchase(&onmemos::client::api::CreditRequest {
            user_id: me.id,
            amount_micros: micros,
            reference: None,
            priority: None,
            expires_at: None,
        })
        .await
        .unwrap_or_else(|e| panic!("purchase: {e}"));
}

/// A new workspace named `name`.
pub async fn workspace(client: &Client, name: &str) -> onmemos::client::model::Workspace {
    client
        .workspaces()
        .create(&onmemos::client::api::CreateWorkspace {
            name: name.into(),
            description: None,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("create workspace {name}: {e}"))
}
