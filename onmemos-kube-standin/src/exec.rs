//! `…/pods/{name}/exec` over WebSocket, in the `v5.channel.k8s.io` and `v4.channel.k8s.io`
//! subprotocols: every binary message starts with its channel (0 stdin, 1 stdout, 2 stderr,
//! 3 error/status, 4 resize, 255 close on v5); each output channel first gets an empty
//! message; the end is a `Status` on channel 3 — `Success`, or `NonZeroExitCode` with an
//! `ExitCode` cause — then the socket closes. With `tty=true` the command runs under a PTY
//! (stderr merged) that resize messages size.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::StandInState;
use crate::api::Target;
use crate::kubelet::Container;
use crate::status::ApiError;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// What an exec asked for.
struct Options {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn options(query: &str) -> Options {
    let mut o = Options {
        command: Vec::new(),
        container: None,
        stdin: false,
        stdout: false,
        stderr: false,
        tty: false,
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let on = v == "true" || v == "1";
        match k.as_ref() {
            "command" => o.command.push(v.into_owned()),
            "container" => o.container = Some(v.into_owned()),
            "stdin" => o.stdin = on,
            "stdout" => o.stdout = on,
            "stderr" => o.stderr = on,
            "tty" => o.tty = on,
            _ => {}
        }
    }
    o
}

/// The pod, the options and the container an exec or attach request addresses: the pod
/// must run here, and the request must ask for at least one stream.
fn addressed(
    state: &StandInState,
    target: &Target,
    request: &Request,
) -> Result<(Value, Options, Arc<Container>), ApiError> {
    let name = target.name.clone().unwrap_or_default();
    let pod = state.store.get(target.resource, &target.namespace, &name)?;
    let o = options(request.uri().query().unwrap_or_default());
    if !(o.stdin || o.stdout || o.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let Some(run) = state.kubelet.pod(&target.namespace, &name) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned or is not running: phase {:?}",
            pod.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )));
    };
    let container = run.container(o.container.as_deref())?.clone();
    Ok((pod, o, container))
}

/// Serves an exec request.
pub(crate) async fn serve(
    state: Arc<StandInState>,
    target: &Target,
    request: Request,
) -> Result<Response, ApiError> {
    let (pod, o, container) = addressed(&state, target, &request)?;
    if o.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    if !container_running(&pod, &container.name) {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: container not found ({:?})",
            container.name
        )));
    }
    let upgrade = WebSocketUpgrade::from_request(request, &())
        .await
        .map_err(|_| ApiError::bad_request("Upgrade request required"))?;
    let upgrade = upgrade.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            let v5 = socket.protocol().is_some_and(|p| p == "v5.channel.k8s.io");
            run_exec(socket, container, o, v5).await;
        })
        .into_response())
}

/// A close with 1000 (normal closure): client-go reads it as the end of every stream, while a
/// close without a code is an error to it.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

fn container_running(pod: &Value, name: &str) -> bool {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["name"] == name && c.pointer("/state/running").is_some())
        })
}

fn frame(channel: u8, bytes: &[u8]) -> Message {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(channel);
    out.extend_from_slice(bytes);
    Message::Binary(out.into())
}

/// The channel-3 status of an exit.
fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        json!({ "metadata": {}, "status": "Success" })
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] }
        })
    }
}

/// Sends the empty first message of each channel the request uses; whether the socket took
/// them.
async fn open_channels(socket: &mut WebSocket, o: &Options) -> bool {
    for (on, channel) in [
        (o.stdin, STDIN),
        (o.stdout, STDOUT),
        (o.stderr && !o.tty, STDERR),
        (true, ERROR),
    ] {
        if on && socket.send(frame(channel, &[])).await.is_err() {
            return false;
        }
    }
    true
}

enum Input {
    Stdin(Bytes),
    CloseStdin,
    Resize(u16, u16),
    Gone,
}

async fn run_exec(mut socket: WebSocket, container: Arc<Container>, o: Options, v5: bool) {
    if !open_channels(&mut socket, &o).await {
        return;
    }
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Bytes)>(64);
    let (in_tx, in_rx) = mpsc::channel::<Input>(64);
    let process = if o.tty {
        spawn_tty(&container, &o, out_tx, in_rx)
    } else {
        spawn_piped(&container, &o, out_tx, in_rx)
    };
    let mut process = match process {
        Ok(p) => p,
        Err(e) => {
            let status = json!({ "metadata": {}, "status": "Failure", "message": format!("failed to exec in container: {e}"), "reason": "InternalError" });
            let _ = socket
                .send(frame(ERROR, status.to_string().as_bytes()))
                .await;
            let _ = socket.send(normal_close()).await;
            return;
        }
    };
    let mut input_open = true;
    let code = loop {
        tokio::select! {
            incoming = socket.recv(), if input_open => match incoming {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                    let input = match b[0] {
                        STDIN => Input::Stdin(b.slice(1..)),
                        RESIZE => match serde_json::from_slice::<Value>(&b[1..]) {
                            Ok(v) => Input::Resize(
                                v["Height"].as_u64().and_then(|h| u16::try_from(h).ok()).unwrap_or(24),
                                v["Width"].as_u64().and_then(|w| u16::try_from(w).ok()).unwrap_or(80),
                            ),
                            Err(_) => continue,
                        },
                        CLOSE if v5 && b.get(1) == Some(&STDIN) => Input::CloseStdin,
                        _ => continue,
                    };
                    let _ = in_tx.send(input).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    input_open = false;
                    let _ = in_tx.send(Input::Gone).await;
                }
                Some(Ok(_)) => {}
            },
            out = out_rx.recv() => match out {
                Some((channel, bytes)) => {
                    if socket.send(frame(channel, &bytes)).await.is_err() {
                        let _ = in_tx.send(Input::Gone).await;
                    }
                }
                None => break (&mut process).await.unwrap_or(1),
            },
        }
    };
    let status = exit_status(&o.command, code);
    let _ = socket
        .send(frame(ERROR, status.to_string().as_bytes()))
        .await;
    let _ = socket.send(normal_close()).await;
}

type Exit = std::pin::Pin<Box<dyn std::future::Future<Output = Option<i32>> + Send>>;

fn code_of(status: std::io::Result<std::process::ExitStatus>) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .ok()
        .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)))
}

/// Runs the command with pipes; output goes to `out` until both streams end.
fn spawn_piped(
    container: &Container,
    o: &Options,
    out: mpsc::Sender<(u8, Bytes)>,
    mut input: mpsc::Receiver<Input>,
) -> std::io::Result<Exit> {
    let mut child = crate::kubelet::piped_command(&o.command, container, o.stdin)?.spawn()?;
    let mut stdin = child.stdin.take();
    let group = child.id().and_then(|p| i32::try_from(p).ok());
    tokio::spawn(async move {
        while let Some(i) = input.recv().await {
            match i {
                Input::Stdin(b) => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(&b).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Input::CloseStdin => stdin = None,
                Input::Resize(..) => {}
                Input::Gone => {
                    if let Some(pid) = group.and_then(rustix::process::Pid::from_raw) {
                        let _ =
                            rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                    }
                    return;
                }
            }
        }
    });
    for (channel, pipe, wanted) in [
        (
            STDOUT,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            o.stdout,
        ),
        (
            STDERR,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            o.stderr,
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let out = out.clone();
        tokio::spawn(async move {
            let mut buf = vec![0; 16 * 1024];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                if wanted
                    && out
                        .send((channel, Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        });
    }
    drop(out);
    Ok(Box::pin(async move { code_of(child.wait().await) }))
}

/// Runs the command under a PTY; its output goes to stdout until the terminal closes.
fn spawn_tty(
    container: &Container,
    o: &Options,
    out: mpsc::Sender<(u8, Bytes)>,
    mut input: mpsc::Receiver<Input>,
) -> std::io::Result<Exit> {
    let (mut child, mut read, mut write) =
        crate::kubelet::spawn_on_pty(&o.command, container, &[])?;
    let leader = child.id().and_then(|p| i32::try_from(p).ok());
    tokio::spawn(async move {
        while let Some(i) = input.recv().await {
            match i {
                Input::Stdin(b) => {
                    let _ = write.write_all(&b).await;
                }
                Input::Resize(rows, cols) => {
                    let _ = write.resize(pty_process::Size::new(rows, cols));
                }
                Input::CloseStdin => {}
                Input::Gone => {
                    if let Some(pid) = leader.and_then(rustix::process::Pid::from_raw) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::HUP);
                    }
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0; 16 * 1024];
        // EIO when the last process holding the terminal exits: the end of output.
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            if out
                .send((STDOUT, Bytes::copy_from_slice(&buf[..n])))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Box::pin(async move { code_of(child.wait().await) }))
}

/// Serves an attach request: the container's own process — its output as it comes, input to
/// its standard input or terminal, resizes of its terminal — until it exits.
pub(crate) async fn serve_attach(
    state: Arc<StandInState>,
    target: &Target,
    request: Request,
) -> Result<Response, ApiError> {
    let (pod, o, container) = addressed(&state, target, &request)?;
    if !container_running(&pod, &container.name) {
        return Err(ApiError::bad_request(format!(
            "container {:?} is not running",
            container.name
        )));
    }
    if o.stdin && !container.stdin && !container.tty {
        return Err(ApiError::bad_request(format!(
            "container {:?} does not read standard input (set stdin: true)",
            container.name
        )));
    }
    let upgrade = WebSocketUpgrade::from_request(request, &())
        .await
        .map_err(|_| ApiError::bad_request("Upgrade request required"))?
        .protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    Ok(upgrade
        .on_upgrade(move |socket| async move { run_attach(socket, container, o).await })
        .into_response())
}

async fn run_attach(mut socket: WebSocket, container: Arc<Container>, o: Options) {
    use crate::kubelet::AttachInput;
    if !open_channels(&mut socket, &o).await {
        return;
    }
    let (_, mut output) = container.logs();
    let input = container
        .input
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                    let sent = match b[0] {
                        STDIN => Some(AttachInput::Bytes(b.slice(1..))),
                        RESIZE => serde_json::from_slice::<Value>(&b[1..]).ok().map(|v| AttachInput::Resize(
                            v["Height"].as_u64().and_then(|h| u16::try_from(h).ok()).unwrap_or(24),
                            v["Width"].as_u64().and_then(|w| u16::try_from(w).ok()).unwrap_or(80),
                        )),
                        _ => None,
                    };
                    if let (Some(sent), Some(input)) = (sent, &input) {
                        let _ = input.send(sent).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            out = output.recv() => match out {
                Ok(bytes) => {
                    if o.stdout && socket.send(frame(STDOUT, &bytes)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if let Some(code) = container.exit_code() {
                    while let Ok(bytes) = output.try_recv() {
                        let _ = socket.send(frame(STDOUT, &bytes)).await;
                    }
                    let status = exit_status(&container_command(&container), code);
                    let _ = socket.send(frame(ERROR, status.to_string().as_bytes())).await;
                    let _ = socket.send(normal_close()).await;
                    return;
                }
            }
        }
    }
    let _ = socket.send(normal_close()).await;
}

fn container_command(container: &Container) -> Vec<String> {
    container.argv().to_vec()
}
