//! Commands and terminals in session pods, through the API server's `exec` and `attach`
//! WebSockets (channel 1 stdout, 2 stderr, 3 the exit `Status`, 4 terminal size), and the
//! pods' usage from `metrics.k8s.io`.

use async_trait::async_trait;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use onmemos_core::ports::compute::{ExecEvent, ExecRequest, ExecStream, PtyConnection, PtySize};
use onmemos_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use super::manifests::CONTAINER;
use super::retry::{kube_error, retried};
use crate::compute::ReceiverStream;

/// The variable that marks every process of one exec, so a timeout can kill them all.
const EXEC_MARKER: &str = "ONMEMOS_EXEC";

/// The script that exports `NAME=value` arguments up to `--`, then runs the rest: the request's
/// environment reaches the command without quoting anything into a script.
const RUN: &str = r#"while [ "$1" != -- ]; do export "$1"; shift; done; shift; exec "$@""#;

/// Kills every process of the pod carrying `$1` in its environment (`$1` is `NAME=value`).
const KILL: &str = r#"for p in /proc/[0-9]*; do case "$(tr '\000' ' ' < "$p/environ" 2>/dev/null)" in *"$1 "*) kill -9 "${p#/proc/}" 2>/dev/null;; esac; done; true"#;

fn container_params() -> AttachParams {
    AttachParams {
        container: Some(CONTAINER.to_owned()),
        ..AttachParams::default()
    }
}

/// Runs `request` in the session container of pod `name`.
pub(super) async fn exec(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    request: ExecRequest,
) -> Result<ExecStream> {
    if request.command.is_empty() {
        return Err(Error::invalid("command", "the command is empty"));
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let marker = format!("{EXEC_MARKER}={}", uuid::Uuid::now_v7().simple());
    let mut argv: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        RUN.into(),
        "sh".into(),
        marker.clone(),
    ];
    argv.extend(request.env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.push("--".into());
    argv.extend(request.command.iter().cloned());
    let params = AttachParams {
        stdin: request.stdin.is_some(),
        stdout: true,
        stderr: true,
        tty: false,
        ..container_params()
    };
    let mut process = api
        .exec(name, argv, &params)
        .await
        .map_err(|e| kube_error("start the command in the session's pod", e))?;
    if let (Some(bytes), Some(mut stdin)) = (request.stdin.clone(), process.stdin()) {
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
            // The end of input, for the command (kube sends it as the close of channel 0).
            let _ = stdin.shutdown().await;
        });
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let stdout = process.stdout();
    let stderr = process.stderr();
    let status = process.take_status();
    let kill = (api.clone(), name.to_owned(), marker);
    tokio::spawn(async move {
        let pump = async {
            let out = pump(stdout, tx.clone(), ExecEvent::Stdout);
            let err = pump(stderr, tx.clone(), ExecEvent::Stderr);
            tokio::join!(out, err);
            match status {
                Some(status) => exit_code(status.await),
                None => None,
            }
        };
        let code = match tokio::time::timeout(request.timeout, pump).await {
            Ok(code) => code,
            Err(_) => {
                process.abort();
                kill_marked(&kill.0, &kill.1, &kill.2).await;
                None
            }
        };
        drop(process);
        let _ = tx.send(Ok(ExecEvent::Exit(code))).await;
    });
    Ok(Box::pin(ReceiverStream(rx)))
}

/// Copies one output stream into events until it ends.
async fn pump(
    reader: Option<impl AsyncRead + Unpin>,
    tx: tokio::sync::mpsc::Sender<Result<ExecEvent>>,
    event: fn(Bytes) -> ExecEvent,
) {
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0; 32 * 1024];
    while let Ok(n @ 1..) = reader.read(&mut buf).await {
        if tx
            .send(Ok(event(Bytes::copy_from_slice(&buf[..n]))))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The exit code of the `Status` on channel 3: `Success` is 0, `NonZeroExitCode` carries it
/// in its `ExitCode` cause; anything else (killed, no status) has none.
fn exit_code(status: Option<Status>) -> Option<i32> {
    let status = status?;
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    status
        .details?
        .causes?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref()?.parse().ok())
}

/// Kills the processes of a timed-out command, by the marker in their environment.
async fn kill_marked(api: &Api<Pod>, name: &str, marker: &str) {
    let argv = vec![
        "/bin/sh".to_owned(),
        "-c".into(),
        KILL.into(),
        "sh".into(),
        marker.to_owned(),
    ];
    let params = AttachParams {
        stdout: true,
        stderr: false,
        ..container_params()
    };
    match api.exec(name, argv, &params).await {
        Ok(process) => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), process.join()).await;
        }
        Err(e) => tracing::warn!(pod = name, error = %e, "could not kill a timed-out command"),
    }
}

/// Attaches to the session's shell (the container's own process, under its terminal).
///
/// The connection is driven here rather than by kube's `AttachedProcess`, whose loop takes
/// input and resizes from two queues in no set order: a resize followed by keystrokes must
/// reach the terminal in that order (`stty size` right after a resize must see it). One task
/// sends every frame in the order they were given; another reads the output.
pub(super) async fn attach(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    size: PtySize,
) -> Result<Box<dyn PtyConnection>> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let params = AttachParams {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
        ..container_params()
    };
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
        .attach(name, &params)
        .map_err(|e| Error::internal(format!("an attach request: {e}")))?;
    let connection = client
        .connect(request)
        .await
        .map_err(|e| kube_error("attach to the session's terminal", e))?;
    let (mut sink, mut stream) = connection.into_stream().split();
    let (frames, mut to_send) = tokio::sync::mpsc::channel::<Bytes>(64);
    let (received, output) = tokio::sync::mpsc::channel::<Bytes>(256);
    let writer = tokio::spawn(async move {
        while let Some(frame) = to_send.recv().await {
            if sink.send(Message::Binary(frame)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                // Channel 1 is the terminal's output; 3 the end (its Status), 255 a closed
                // channel; the empty first frame of each channel carries nothing.
                Message::Binary(b)
                    if b.len() > 1
                        && b[0] == STDOUT_CHANNEL
                        && received.send(b.slice(1..)).await.is_err() =>
                {
                    return;
                }
                Message::Binary(b) if b.len() > 1 && b[0] == STATUS_CHANNEL => return,
                Message::Close(_) => return,
                _ => {}
            }
        }
    });
    let pty = KubePty {
        frames,
        output: tokio::sync::Mutex::new(output),
        tasks: [writer, reader],
    };
    pty.resize(size).await?;
    Ok(Box::new(pty))
}

/// The channels of the remote command protocol this side uses.
const STDIN_CHANNEL: u8 = 0;
const STDOUT_CHANNEL: u8 = 1;
const STATUS_CHANNEL: u8 = 3;
const RESIZE_CHANNEL: u8 = 4;

/// An attachment to a session's terminal; dropping it ends the connection.
struct KubePty {
    /// Frames to send, in order: input and resizes.
    frames: tokio::sync::mpsc::Sender<Bytes>,
    output: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Bytes>>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for KubePty {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for KubePty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePty").finish_non_exhaustive()
    }
}

impl KubePty {
    async fn send(&self, channel: u8, payload: &[u8]) -> Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(payload);
        self.frames
            .send(Bytes::from(frame))
            .await
            .map_err(|_| Error::unavailable("the session's terminal is gone"))
    }
}

#[async_trait]
impl PtyConnection for KubePty {
    async fn write(&self, bytes: &[u8]) -> Result<()> {
        self.send(STDIN_CHANNEL, bytes).await
    }

    async fn read(&self) -> Result<Option<Bytes>> {
        Ok(self.output.lock().await.recv().await)
    }

    async fn resize(&self, size: PtySize) -> Result<()> {
        let body = serde_json::json!({ "Width": size.cols, "Height": size.rows });
        self.send(RESIZE_CHANNEL, body.to_string().as_bytes()).await
    }
}

/// A pod's usage now, from `metrics.k8s.io`.
pub(super) struct PodMetrics {
    /// CPU, in millicores.
    pub(super) cpu_millis: u64,
    /// Working-set memory, in bytes.
    pub(super) memory_bytes: u64,
}

/// Reads `metrics.k8s.io/v1beta1` `PodMetrics` of a pod: the sum over its containers.
pub(super) async fn pod_metrics(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<PodMetrics> {
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}");
    let value: serde_json::Value = retried(|| async {
        let request = http::Request::get(&path)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        client.request(request).await
    })
    .await
    .map_err(|e| kube_error("read the session's usage from metrics.k8s.io", e))?;
    let mut metrics = PodMetrics {
        cpu_millis: 0,
        memory_bytes: 0,
    };
    for c in value["containers"].as_array().into_iter().flatten() {
        metrics.cpu_millis += c["usage"]["cpu"].as_str().and_then(cpu_millis).unwrap_or(0);
        metrics.memory_bytes += c["usage"]["memory"].as_str().and_then(bytes).unwrap_or(0);
    }
    Ok(metrics)
}

/// `250m`, `1`, `1500000n`, `20u` → millicores.
fn cpu_millis(q: &str) -> Option<u64> {
    let (digits, scale): (&str, f64) = match q.char_indices().last()? {
        (i, 'n') => (&q[..i], 1e-6),
        (i, 'u') => (&q[..i], 1e-3),
        (i, 'm') => (&q[..i], 1.0),
        _ => (q, 1000.0),
    };
    let v: f64 = digits.parse().ok()?;
    Some((v * scale).round() as u64)
}

/// `128Mi`, `1Gi`, `1000k`, `52428800` → bytes.
fn bytes(q: &str) -> Option<u64> {
    const UNITS: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in UNITS {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().ok()?.checked_mul(*factor);
        }
    }
    q.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_of_metrics_are_read() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("1500000n"), Some(2));
        assert_eq!(cpu_millis("20000u"), Some(20));
        assert_eq!(cpu_millis("x"), None);
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1000k"), Some(1_000_000));
        assert_eq!(bytes("52428800"), Some(52_428_800));
        assert_eq!(bytes("1Zi"), None);
    }

    #[test]
    fn the_exit_status_says_the_code() {
        let status = |json: serde_json::Value| serde_json::from_value::<Status>(json).ok();
        assert_eq!(
            exit_code(status(
                serde_json::json!({"status": "Success", "code": 0, "message": "", "reason": ""})
            )),
            Some(0)
        );
        assert_eq!(
            exit_code(status(
                serde_json::json!({"status": "Failure", "code": 0, "message": "command terminated with non-zero exit code", "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})
            )),
            Some(3)
        );
        assert_eq!(
            exit_code(status(
                serde_json::json!({"status": "Failure", "code": 500, "message": "boom", "reason": "InternalError"})
            )),
            None
        );
        assert_eq!(exit_code(None), None);
    }
}
