//! A real session over real sockets: the router served on loopback, local compute with real
//! processes under a real PTY, HTTP with reqwest and the shell over a real WebSocket.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use onmemos_core::clock::SystemClock;
use onmemos_core::{Engine, EngineConfig, SessionSettings};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Server {
    base: String,
    engine: Engine,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = EngineConfig {
        sessions: SessionSettings {
            check_interval_ms: 200,
            billing_window_secs: 60,
            node: Some("test-node".into()),
            ..SessionSettings::default()
        },
        ..EngineConfig::default()
    };
    let engine = common::engine_in(dir.path(), Arc::new(SystemClock), config).await;
    let addr = common::serve(engine.clone()).await;
    Server {
        base: format!("http://{addr}"),
        engine,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Server {
    /// A user with `credits` micro-credits and a workspace: their key and the workspace id.
    async fn user(&self, email: &str, credits: i64) -> (String, String) {
        let key = common::funded_member(&self.engine, email, credits).await;
        let (status, ws) = self
            .call(
                reqwest::Method::POST,
                "/v1/workspaces",
                &key,
                Some(json!({"name": "lab"})),
            )
            .await;
        assert_eq!(status, 201, "{ws}");
        (key, ws["id"].as_str().unwrap_or_default().to_owned())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The HTTP status a shell request is refused with (it must be refused).
    /// The newline-delimited answer of a streamed exec of `sh -c script`.
    async fn exec_stream(&self, session: &str, key: &str, script: &str) -> String {
        self.http
            .post(format!("{}/v1/sessions/{session}/exec/stream", self.base))
            .bearer_auth(key)
            .json(&json!({"command": ["sh", "-c", script]}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_default()
    }

    async fn shell_refusal(&self, session: &str, key: &str) -> u16 {
        match self.shell(session, key).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            other => panic!("the shell opened: {:?}", other.map(|_| ())),
        }
    }

    async fn shell(
        &self,
        session: &str,
        key: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::Error,
    > {
        let url = format!(
            "{}/v1/sessions/{session}/shell?rows=24&cols=80",
            self.base.replace("http://", "ws://")
        );
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {key}")
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(ws, _)| ws)
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads frames until the terminal output contains `needle`, collecting control frames.
async fn read_until(ws: &mut Socket, needle: &str, controls: &mut Vec<Value>) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains(needle) {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in the terminal; got {text:?}"));
        match frame {
            Some(Ok(Message::Binary(b))) => text.push_str(&String::from_utf8_lossy(&b)),
            Some(Ok(Message::Text(t))) => {
                controls.push(serde_json::from_str(t.as_str()).unwrap_or(Value::Null))
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended waiting for {needle:?}: {other:?}; got {text:?}"),
        }
    }
    text
}

/// Reads control frames until one of type `kind` arrives.
async fn control_frame(ws: &mut Socket, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame"));
        match frame {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == kind {
                    return v;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended waiting for a {kind} frame: {other:?}"),
        }
    }
}

use onmemos_backends::testing::session_processes;

#[tokio::test]
async fn a_real_session_execs_serves_a_shell_and_leaves_no_process() {
    let s = server().await;
    let (key, workspace) = s.user("ada@example.com", 10_000_000).await;
    let (status, session) = s
        .call(
            reqwest::Method::POST,
            "/v1/sessions",
            &key,
            Some(json!({"workspace_id": workspace, "template": "python"})),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["status"], "running");
    let id = session["id"].as_str().unwrap_or_default().to_owned();

    let (status, out) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/exec"),
            &key,
            Some(json!({"command": ["echo", "hello from exec"]})),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["stdout"], "hello from exec\n");
    assert_eq!(out["exit_code"], 0);

    // Streaming exec: newline-delimited JSON ending with the exit line.
    let streamed = s
        .exec_stream(&id, &key, "echo out; echo err >&2; exit 4")
        .await;
    let lines: Vec<Value> = streamed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    assert!(
        lines.contains(&json!({"type": "stdout", "data": "out\n"})),
        "{streamed}"
    );
    assert!(
        lines.contains(&json!({"type": "stderr", "data": "err\n"})),
        "{streamed}"
    );
    assert_eq!(lines.last(), Some(&json!({"type": "exit", "exit_code": 4})));

    // Output arrives byte for byte: a character written in two halves, a pause between them,
    // is one character (it was two U+FFFD); bytes that are not UTF-8 come as base64.
    let script = r"printf '\303'; sleep 0.3; printf '\251\n'; printf '\377\376\000' >&2";
    let streamed = s.exec_stream(&id, &key, script).await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for line in streamed.lines() {
        let line: onmemos_core::api::ExecStreamLine =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        match line {
            onmemos_core::api::ExecStreamLine::Stdout { data, encoding } => {
                out.extend(encoding.decode(&data).unwrap_or_default());
            }
            onmemos_core::api::ExecStreamLine::Stderr { data, encoding } => {
                err.extend(encoding.decode(&data).unwrap_or_default());
            }
            _ => {}
        }
    }
    assert_eq!(String::from_utf8_lossy(&out), "é\n", "{streamed}");
    assert_eq!(err, [0xff, 0xfe, 0x00], "{streamed}");
    assert!(streamed.contains(r#""encoding":"base64""#), "{streamed}");
    let (status, out) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/exec"),
            &key,
            Some(json!({"command": ["sh", "-c", script]})),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["stdout"], "é\n");
    assert!(out.get("stdout_encoding").is_none(), "{out}");
    assert_eq!(
        (&out["stderr"], &out["stderr_encoding"]),
        (&json!("//4A"), &json!("base64"))
    );

    // The shell: type a command, read its output, resize, ask for status and credits.
    let mut ws = s
        .shell(&id, &key)
        .await
        .unwrap_or_else(|e| panic!("ws: {e}"));
    let status = control_frame(&mut ws, "status").await;
    assert_eq!(status["session"]["id"], id.as_str());
    ws.send(Message::Binary(b"echo typed-$((6*7))\n".to_vec().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut controls = Vec::new();
    read_until(&mut ws, "typed-42", &mut controls).await;
    ws.send(Message::Text(
        json!({"type": "resize", "rows": 40, "cols": 132})
            .to_string()
            .into(),
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    ws.send(Message::Binary(b"stty size\n".to_vec().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    read_until(&mut ws, "40 132", &mut controls).await;
    // A malformed control frame is answered with an error and harms nothing.
    ws.send(Message::Text("{\"type\": \"explode\"}".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = control_frame(&mut ws, "error").await;
    assert_eq!(err["code"], "invalid_request");
    ws.send(Message::Text(json!({"type": "credits"}).to_string().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let credits = control_frame(&mut ws, "credits").await;
    assert!(
        credits["balance"]["available"].as_i64().unwrap_or(0) > 0,
        "{credits}"
    );

    // Re-attach: a second socket gets the scrollback of the same terminal.
    drop(ws);
    let mut again = s
        .shell(&id, &key)
        .await
        .unwrap_or_else(|e| panic!("ws: {e}"));
    // Nothing new was typed: the command's output can only come from the scrollback.
    read_until(&mut again, "typed-42", &mut Vec::new()).await;

    // Stop: the shell is told why, and no process of the session survives.
    assert!(!session_processes(&id).is_empty());
    let (status, stopped) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/stop"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["stop_reason"], "user");
    let exit = control_frame(&mut again, "exit").await;
    assert_eq!(exit["reason"], "user");
    assert_eq!(session_processes(&id), Vec::<i32>::new());

    // Its event trail, as JSON and as server-sent events (which end with the stop).
    let (status, events) = s
        .call(
            reqwest::Method::GET,
            &format!("/v1/sessions/{id}/events"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = events
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds.first(), Some(&"created"));
    assert_eq!(kinds.last(), Some(&"stopped"));
    let sse = s
        .http
        .get(format!("{}/v1/sessions/{id}/events/stream", s.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = tokio::time::timeout(Duration::from_secs(10), sse.text())
        .await
        .unwrap_or_else(|_| panic!("the event stream did not end after the stop"))
        .unwrap_or_default();
    assert!(
        text.contains("event: created") && text.contains("event: stopped"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_leaves_the_session_unharmed() {
    let s = server().await;
    let (key, workspace) = s.user("bob@example.com", 10_000_000).await;
    let (eve, _) = s.user("eve@example.com", 10_000_000).await;
    let post = |path: String, body: Value| {
        let key = key.clone();
        let s = &s;
        async move { s.call(reqwest::Method::POST, &path, &key, Some(body)).await }
    };
    let (status, err) = post(
        "/v1/sessions".into(),
        json!({"workspace_id": workspace, "template": "cobol"}),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_request")),
        "{err}"
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cobol")
    );
    let (status, err) = post(
        "/v1/sessions".into(),
        json!({"workspace_id": workspace, "template": "python", "limits": {"max_duration_secs": 5}}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_duration_secs"),
        "{err}"
    );
    let (status, session) = post(
        "/v1/sessions".into(),
        json!({"workspace_id": workspace, "template": "python"}),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap_or_default().to_owned();

    // Someone else's session: 404 on every endpoint, the shell included.
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/sessions/{id}")),
        (reqwest::Method::POST, format!("/v1/sessions/{id}/stop")),
        (reqwest::Method::GET, format!("/v1/sessions/{id}/events")),
        (reqwest::Method::DELETE, format!("/v1/sessions/{id}")),
    ] {
        let (status, _) = s.call(method.clone(), &path, &eve, None).await;
        assert_eq!(status, 404, "{method} {path} as another user");
    }
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/exec"),
            &eve,
            Some(json!({"command": ["id"]})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        s.shell_refusal(&id, &eve).await,
        404,
        "another user's shell"
    );

    // Malformed exec bodies.
    for body in [
        json!({"command": []}),
        json!({"command": ["true"], "timeout_secs": 0}),
        json!({"command": "true"}),
        json!({"command": ["true"], "surprise": 1}),
    ] {
        let (status, err) = post(format!("/v1/sessions/{id}/exec"), body.clone()).await;
        assert_eq!(status, 400, "{body} → {err}");
    }
    // Deleting its workspace is refused while it runs.
    let (status, err) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/workspaces/{workspace}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 409, "{err}");
    // Deleting a running session is refused; it still runs.
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (_, out) = post(
        format!("/v1/sessions/{id}/exec"),
        json!({"command": ["echo", "still here"]}),
    )
    .await;
    assert_eq!(out["stdout"], "still here\n");

    // Once stopped: exec and shell are conflicts; delete works.
    let (status, _) = post(format!("/v1/sessions/{id}/stop"), json!({})).await;
    assert_eq!(status, 200);
    let (status, err) = post(
        format!("/v1/sessions/{id}/exec"),
        json!({"command": ["true"]}),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(
        s.shell_refusal(&id, &key).await,
        409,
        "a stopped session's shell"
    );
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            &format!("/v1/sessions/{id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 404);
}
