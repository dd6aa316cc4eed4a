//! The kubelet of every node: runs each pod bound to a node as real local processes — one
//! process group per container, its `command` and `args` with the container's environment —
//! and keeps the pod's status as a kubelet does: phases, container states, restart counts,
//! conditions, pull errors for images it is told are missing. Logs are the processes'
//! output. A deleted pod's processes get SIGTERM, then SIGKILL after its grace period, and
//! the pod goes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::{broadcast, watch};

use crate::StandInState;
use crate::resources::{self, ResourceType};
use crate::store::{Filter, str_at, timestamp};
use crate::volumes;

/// Log bytes kept per container.
const LOG_BYTES: usize = 1 << 20;

/// What a container is doing.
#[derive(Debug, Clone)]
enum ContainerState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

impl ContainerState {
    fn to_json(&self) -> Value {
        match self {
            Self::Waiting { reason, message } => {
                json!({ "waiting": { "reason": reason, "message": message } })
            }
            Self::Running { started_at } => json!({ "running": { "startedAt": started_at } }),
            Self::Terminated {
                exit_code,
                reason,
                started_at,
                finished_at,
            } => json!({ "terminated": {
                "exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at,
                "containerID": "",
            } }),
        }
    }
}

/// One container of a running pod.
pub(crate) struct Container {
    pub(crate) name: String,
    image: String,
    argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) dir: PathBuf,
    /// What runs a command in the container's file system (bubblewrap), when it has one.
    filesystem: Result<Vec<String>, String>,
    /// The value of [`volumes::MARKER`] in its processes' environment.
    marker: String,
    state: Mutex<ContainerState>,
    last_state: Mutex<Option<ContainerState>>,
    restarts: AtomicU32,
    /// The process group of the running process.
    pgid: Mutex<Option<i32>>,
    logs: Mutex<VecDeque<u8>>,
    pub(crate) log_tx: broadcast::Sender<bytes::Bytes>,
    id: String,
    /// When it was first started.
    started: std::time::Instant,
    /// Whether it runs under a terminal (`tty: true`).
    pub(crate) tty: bool,
    /// Whether it reads standard input (`stdin: true`).
    pub(crate) stdin: bool,
    /// Where attached clients' input goes, while the process runs.
    pub(crate) input: Mutex<Option<tokio::sync::mpsc::Sender<AttachInput>>>,
}

/// Input of an attached client.
#[derive(Debug)]
pub(crate) enum AttachInput {
    /// Bytes for standard input.
    Bytes(bytes::Bytes),
    /// A terminal size: rows, columns.
    Resize(u16, u16),
}

impl Container {
    /// The recent output, and a receiver of the output after it (each byte in one of the
    /// two, exactly once).
    pub(crate) fn logs(&self) -> (Vec<u8>, broadcast::Receiver<bytes::Bytes>) {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        (logs.iter().copied().collect(), self.log_tx.subscribe())
    }

    fn append(&self, bytes: &[u8]) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.extend(bytes);
        let excess = logs.len().saturating_sub(LOG_BYTES);
        logs.drain(..excess);
        let _ = self.log_tx.send(bytes::Bytes::copy_from_slice(bytes));
    }

    /// The reason it waits, before its first start.
    pub(crate) fn waiting_to_start(&self) -> Option<String> {
        match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            ContainerState::Waiting { reason, .. } if self.restarts.load(Ordering::SeqCst) == 0 => {
                Some(reason.clone())
            }
            _ => None,
        }
    }

    /// Its CPU (millicores, averaged over its life) and resident memory (bytes) now.
    pub(crate) fn usage(&self) -> (u64, u64) {
        let Some(pgid) = *self.pgid.lock().unwrap_or_else(|e| e.into_inner()) else {
            return (0, 0);
        };
        if !matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            ContainerState::Running { .. }
        ) {
            return (0, 0);
        }
        let (cpu_seconds, memory) = crate::metrics::group_usage(pgid);
        let alive = self.started.elapsed().as_secs_f64().max(0.001);
        ((cpu_seconds / alive * 1000.0).round() as u64, memory)
    }

    /// Its exit code, once its process ended (terminated, or waiting to restart).
    pub(crate) fn exit_code(&self) -> Option<i32> {
        match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            ContainerState::Terminated { exit_code, .. } => Some(*exit_code),
            ContainerState::Waiting { .. } if self.restarts.load(Ordering::SeqCst) > 0 => {
                match &*self.last_state.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some(ContainerState::Terminated { exit_code, .. }) => Some(*exit_code),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The command it runs.
    pub(crate) fn argv(&self) -> &[String] {
        &self.argv
    }

    /// `argv` as run in the container's file system.
    pub(crate) fn command_line(&self, argv: &[String]) -> std::io::Result<Vec<String>> {
        match &self.filesystem {
            Ok(prefix) => Ok(prefix.iter().chain(argv).cloned().collect()),
            Err(e) => Err(std::io::Error::other(e.clone())),
        }
    }

    /// Kills every process of the container, its own and those exec'd into it.
    fn kill_all(&self) {
        self.signal(rustix::process::Signal::KILL);
        volumes::kill_marked(&self.marker);
    }

    /// Whether it is terminated now.
    pub(crate) fn terminated(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            ContainerState::Terminated { .. }
        )
    }

    fn set(&self, state: ContainerState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pgid) = *self.pgid.lock().unwrap_or_else(|e| e.into_inner())
            && let Some(pid) = rustix::process::Pid::from_raw(pgid)
        {
            let _ = rustix::process::kill_process_group(pid, signal);
        }
    }

    fn status(&self) -> Value {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut s = json!({
            "name": self.name,
            "image": self.image,
            "imageID": format!("onmemos-standin://{}", self.image),
            "containerID": format!("onmemos-standin://{}", self.id),
            "ready": matches!(state, ContainerState::Running { .. }),
            "started": matches!(state, ContainerState::Running { .. }),
            "restartCount": self.restarts.load(Ordering::SeqCst),
            "state": state.to_json(),
            "lastState": {},
        });
        if let Some(last) = &*self.last_state.lock().unwrap_or_else(|e| e.into_inner()) {
            s["lastState"] = last.to_json();
        }
        s
    }
}

/// A pod the kubelet runs.
pub(crate) struct PodRun {
    pub(crate) namespace: String,
    pub(crate) name: String,
    uid: String,
    pub(crate) containers: Vec<Arc<Container>>,
    stop: watch::Sender<Option<u64>>,
    /// Containers whose task has ended.
    finished: AtomicU32,
    /// Stopped by a node shutdown: the pod stays, `Failed` with reason `Terminated`.
    shutdown: std::sync::atomic::AtomicBool,
    pod_ip: String,
    started: String,
}

impl PodRun {
    /// Whether every container's task has ended.
    fn all_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst) as usize >= self.containers.len()
    }
}

impl PodRun {
    /// The container `name`, or the only one.
    pub(crate) fn container(&self, name: Option<&str>) -> Result<&Arc<Container>, crate::ApiError> {
        match name {
            Some(n) => self.containers.iter().find(|c| c.name == n).ok_or_else(|| {
                crate::ApiError::bad_request(format!(
                    "container {n} is not valid for pod {}",
                    self.name
                ))
            }),
            None if self.containers.len() == 1 => Ok(&self.containers[0]),
            None => Err(crate::ApiError::bad_request(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                self.name,
                self.containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))),
        }
    }
}

/// The kubelets of all nodes (one process table).
pub(crate) struct Kubelet {
    pods: Mutex<HashMap<String, Arc<PodRun>>>,
    root: tempfile::TempDir,
    refused: Mutex<HashSet<String>>,
    next_ip: AtomicU32,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field(
                "pods",
                &self.pods.lock().map(|p| p.len()).unwrap_or_default(),
            )
            .finish()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for pod in self.pods.lock().unwrap_or_else(|e| e.into_inner()).values() {
            for c in &pod.containers {
                c.kill_all();
            }
        }
    }
}

fn pods_type() -> &'static ResourceType {
    resources::find("", "v1", "pods").unwrap_or(&resources::RESOURCES[2])
}

impl Kubelet {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            pods: Mutex::default(),
            root: tempfile::tempdir()?,
            refused: Mutex::default(),
            next_ip: AtomicU32::new(2),
        })
    }

    /// Where CSI volumes keep their files: `<root>/<driver>/<bucket>/<prefix>`.
    pub(crate) fn csi_root(&self) -> PathBuf {
        self.root.path().join("csi")
    }

    /// Images that fail to pull from now on.
    pub(crate) fn refuse_image(&self, image: &str) {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(image.to_owned());
    }

    /// The running pod with this namespace and name.
    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Option<Arc<PodRun>> {
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|p| p.namespace == namespace && p.name == name)
            .cloned()
    }

    /// Kills one container's processes (it restarts as its pod's policy says).
    pub(crate) fn kill_container(&self, namespace: &str, pod: &str, container: &str) -> bool {
        match self
            .pod(namespace, pod)
            .and_then(|p| p.containers.iter().find(|c| c.name == container).cloned())
        {
            Some(c) => {
                c.signal(rustix::process::Signal::KILL);
                true
            }
            None => false,
        }
    }
}

/// Starts the pods bound to existing nodes that are not running yet, stops those being
/// deleted, and forgets those that are gone.
pub(crate) fn sync(state: &Arc<StandInState>) {
    let pods = pods_type();
    let Some(nodes) = resources::find("", "v1", "nodes") else {
        return;
    };
    let (node_list, _) = state.store.list(nodes, &Filter::default());
    let node_names: HashSet<String> = node_list
        .iter()
        .map(|n| str_at(n, "/metadata/name").to_owned())
        .collect();
    let (all, _) = state.store.list(pods, &Filter::default());
    let present: HashSet<String> = all
        .iter()
        .map(|p| str_at(p, "/metadata/uid").to_owned())
        .collect();
    let kubelet = &state.kubelet;
    // Pods that went (deleted at once, or their node removed): their processes go too.
    let gone: Vec<Arc<PodRun>> = {
        let mut runs = kubelet.pods.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<String> = runs
            .keys()
            .filter(|u| !present.contains(*u))
            .cloned()
            .collect();
        ids.iter().filter_map(|u| runs.remove(u)).collect()
    };
    for run in gone {
        let _ = run.stop.send(Some(0));
    }
    for pod in &all {
        let uid = str_at(pod, "/metadata/uid");
        let node = str_at(pod, "/spec/nodeName");
        let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
        let running = kubelet
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned();
        match (running, deleting) {
            (Some(run), true) => {
                let grace = pod
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(30);
                if run.stop.borrow().is_none() {
                    let _ = run.stop.send(Some(grace));
                }
                if run.all_finished() {
                    remove_run(state, &run);
                }
            }
            (None, true) if !node.is_empty() => {
                // Never started here (or already stopped): nothing to wait for.
                let _ = state.store.remove(
                    pods,
                    str_at(pod, "/metadata/namespace"),
                    str_at(pod, "/metadata/name"),
                );
            }
            (None, false) if !node.is_empty() && node_names.contains(node) && !terminal(pod) => {
                start(state, pod)
            }
            _ => {}
        }
    }
}

fn terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn start(state: &Arc<StandInState>, pod: &Value) {
    let kubelet = &state.kubelet;
    let uid = str_at(pod, "/metadata/uid").to_owned();
    let namespace = str_at(pod, "/metadata/namespace").to_owned();
    let name = str_at(pod, "/metadata/name").to_owned();
    let dir = kubelet.root.path().join(&uid);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let ip = kubelet.next_ip.fetch_add(1, Ordering::SeqCst);
    let containers: Vec<Arc<Container>> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let mut argv: Vec<String> = ["command", "args"]
                .iter()
                .flat_map(|k| {
                    c.get(*k)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if argv.is_empty() {
                argv = vec!["sleep".into(), "infinity".into()];
            }
            let name = str_at(c, "/name").to_owned();
            let marker = format!("{uid}.{name}");
            let mut env: Vec<(String, String)> = c
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some((
                        e.get("name")?.as_str()?.to_owned(),
                        e.get("value")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ))
                })
                .collect();
            env.push((volumes::MARKER.to_owned(), marker.clone()));
            Arc::new(Container {
                name,
                image: str_at(c, "/image").to_owned(),
                argv,
                env,
                dir: dir.clone(),
                filesystem: volumes::prefix(state, pod, c, &dir),
                marker,
                state: Mutex::new(ContainerState::Waiting {
                    reason: "ContainerCreating".into(),
                    message: String::new(),
                }),
                last_state: Mutex::new(None),
                restarts: AtomicU32::new(0),
                pgid: Mutex::new(None),
                logs: Mutex::default(),
                log_tx: broadcast::channel(256).0,
                id: uuid::Uuid::new_v4().simple().to_string(),
                started: std::time::Instant::now(),
                tty: c.get("tty").and_then(Value::as_bool).unwrap_or(false),
                stdin: c.get("stdin").and_then(Value::as_bool).unwrap_or(false),
                input: Mutex::new(None),
            })
        })
        .collect();
    let (stop, _) = watch::channel(None);
    let run = Arc::new(PodRun {
        namespace,
        name,
        uid: uid.clone(),
        containers,
        stop,
        finished: AtomicU32::new(0),
        shutdown: std::sync::atomic::AtomicBool::new(false),
        pod_ip: format!("10.244.{}.{}", (ip >> 8) & 0xff, ip & 0xff),
        started: timestamp(),
    });
    kubelet
        .pods
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uid, run.clone());
    let policy = pod
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
        .to_owned();
    for container in run.containers.clone() {
        let state = state.clone();
        let run = run.clone();
        let policy = policy.clone();
        tokio::spawn(async move { run_container(state, run, container, policy).await });
    }
    let state = state.clone();
    tokio::spawn(async move { report(&state, &run) });
}

/// Runs one container until its pod stops, restarting it as `policy` says.
async fn run_container(
    state: Arc<StandInState>,
    run: Arc<PodRun>,
    c: Arc<Container>,
    policy: String,
) {
    let mut stop = run.stop.subscribe();
    let mut backoff = Duration::from_millis(100);
    loop {
        if stop.borrow().is_some() {
            break;
        }
        let refused = state
            .kubelet
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&c.image);
        if refused {
            c.set(ContainerState::Waiting {
                reason: "ErrImagePull".into(),
                message: format!("failed to pull and unpack image \"{}\": not found", c.image),
            });
            report(&state, &run);
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.set(ContainerState::Waiting {
                reason: "ImagePullBackOff".into(),
                message: format!("Back-off pulling image \"{}\"", c.image),
            });
            report(&state, &run);
            let _ = stop.wait_for(Option::is_some).await;
            break;
        }
        if let Err(e) = &c.filesystem {
            c.set(ContainerState::Waiting {
                reason: "CreateContainerConfigError".into(),
                message: e.clone(),
            });
            report(&state, &run);
            let _ = stop.wait_for(Option::is_some).await;
            break;
        }
        let started_at = timestamp();
        let spawned = spawn_container(&c, &run.name);
        let (mut child, pumps, input_pump) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                c.append(format!("exec {}: {e}\n", c.argv[0]).as_bytes());
                c.set(ContainerState::Terminated {
                    exit_code: 128,
                    reason: "StartError".into(),
                    started_at: started_at.clone(),
                    finished_at: timestamp(),
                });
                report(&state, &run);
                if policy == "Never" {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        c.set(ContainerState::Running {
            started_at: started_at.clone(),
        });
        report(&state, &run);
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stop.wait_for(Option::is_some) => None,
        };
        let status = match exited {
            Some(status) => status,
            None => {
                let grace = stop.borrow().unwrap_or(0);
                c.signal(rustix::process::Signal::TERM);
                match tokio::time::timeout(Duration::from_secs(grace), child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        c.signal(rustix::process::Signal::KILL);
                        child.wait().await
                    }
                }
            }
        };
        // Everything of the container goes with its process; attached input has nowhere to go.
        c.kill_all();
        c.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = input_pump {
            p.abort();
        }
        for p in pumps {
            let _ = p.await;
        }
        let code = status.ok().map_or(137, |s| {
            use std::os::unix::process::ExitStatusExt as _;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9))
        });
        let terminated = ContainerState::Terminated {
            exit_code: code,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            started_at,
            finished_at: timestamp(),
        };
        c.set(terminated.clone());
        let stopping = stop.borrow().is_some();
        let restart = !stopping && (policy == "Always" || (policy == "OnFailure" && code != 0));
        if !restart {
            report(&state, &run);
            break;
        }
        *c.last_state.lock().unwrap_or_else(|e| e.into_inner()) = Some(terminated);
        c.restarts.fetch_add(1, Ordering::SeqCst);
        c.set(ContainerState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: format!("back-off restarting failed container {}", c.name),
        });
        report(&state, &run);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    run.finished.fetch_add(1, Ordering::SeqCst);
    // The last container of a stopping pod to finish removes the pod.
    if run.stop.borrow().is_some() && run.all_finished() {
        remove_run(&state, &run);
    }
}

/// Forgets a stopped pod and removes it from the store — or, after a node shutdown, leaves it
/// `Failed` as the kubelet's graceful node shutdown does.
fn remove_run(state: &StandInState, run: &PodRun) {
    let mut runs = state.kubelet.pods.lock().unwrap_or_else(|e| e.into_inner());
    if run.shutdown.load(Ordering::SeqCst) {
        drop(runs);
        let _ = state.store.modify(
            pods_type(),
            &run.namespace,
            &run.name,
            true,
            false,
            |current| {
                let mut next = current.clone();
                next["status"]["phase"] = json!("Failed");
                next["status"]["reason"] = json!("Terminated");
                next["status"]["message"] = json!(SHUTDOWN_MESSAGE);
                Ok(next)
            },
        );
        state
            .kubelet
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run.uid);
        return;
    }
    let gone = runs.remove(&run.uid).is_some();
    drop(runs);
    if gone {
        let _ = state.store.remove(pods_type(), &run.namespace, &run.name);
    }
}

/// What the kubelet says of a pod it stops for a node shutdown.
pub(crate) const SHUTDOWN_MESSAGE: &str =
    "Pod was terminated in response to imminent node shutdown.";

/// Stops every pod on `node` as a graceful node shutdown does: SIGTERM, SIGKILL after
/// `grace` seconds, and the pods stay `Failed`.
pub(crate) fn shut_down_node(state: &StandInState, node: &str, grace: u64) {
    let (on_node, _) = state.store.list(pods_type(), &Filter::default());
    for pod in on_node
        .iter()
        .filter(|p| str_at(p, "/spec/nodeName") == node)
    {
        let run = state
            .kubelet
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(str_at(pod, "/metadata/uid"))
            .cloned();
        if let Some(run) = run {
            run.shutdown.store(true, Ordering::SeqCst);
            let _ = run.stop.send(Some(grace));
            if run.all_finished() {
                remove_run(state, &run);
            }
        }
    }
}

/// `argv` in `container` (its environment and directory) in a process group of its own, with
/// its output piped, and its standard input when `stdin`.
pub(crate) fn piped_command(
    argv: &[String],
    container: &Container,
    stdin: bool,
) -> std::io::Result<tokio::process::Command> {
    let argv = container.command_line(argv)?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(&container.dir)
        .envs(container.env.iter().cloned())
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    Ok(cmd)
}

/// Runs `argv` in `container` (its environment and directory, plus `extra` variables) under
/// a new 24×80 PTY; the child and the two halves of the terminal.
pub(crate) fn spawn_on_pty(
    argv: &[String],
    container: &Container,
    extra: &[(&str, &str)],
) -> std::io::Result<(
    tokio::process::Child,
    pty_process::OwnedReadPty,
    pty_process::OwnedWritePty,
)> {
    let argv = container.command_line(argv)?;
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    pty.resize(pty_process::Size::new(24, 80))
        .map_err(std::io::Error::other)?;
    let child = pty_process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(&container.dir)
        .envs(container.env.iter().cloned())
        .envs(extra.iter().copied())
        .env("TERM", "xterm-256color")
        .spawn(pts)
        .map_err(std::io::Error::other)?;
    let (read, write) = pty.into_split();
    Ok((child, read, write))
}

/// A started container process: the child, the tasks copying its output (awaited when it
/// ends), and the task feeding it attached input (stopped when it ends).
type Spawned = (
    tokio::process::Child,
    Vec<tokio::task::JoinHandle<()>>,
    Option<tokio::task::JoinHandle<()>>,
);

/// Starts a container's process — under a PTY for `tty: true`, with piped standard input for
/// `stdin: true` — and the tasks copying its output to the logs and attached input to it.
fn spawn_container(c: &Arc<Container>, hostname: &str) -> std::io::Result<Spawned> {
    use tokio::io::AsyncWriteExt as _;
    let (input_tx, mut input_rx) = tokio::sync::mpsc::channel::<AttachInput>(64);
    let mut pumps = Vec::new();
    let mut input_pump = None;
    let mut output: Vec<Box<dyn tokio::io::AsyncRead + Send + Unpin>> = Vec::new();
    let child = if c.tty {
        let (child, read, mut write) = spawn_on_pty(&c.argv, c, &[("HOSTNAME", hostname)])?;
        output.push(Box::new(read));
        input_pump = Some(tokio::spawn(async move {
            while let Some(input) = input_rx.recv().await {
                match input {
                    AttachInput::Bytes(b) => {
                        let _ = write.write_all(&b).await;
                    }
                    AttachInput::Resize(rows, cols) => {
                        let _ = write.resize(pty_process::Size::new(rows, cols));
                    }
                }
            }
        }));
        child
    } else {
        let mut cmd = piped_command(&c.argv, c, c.stdin)?;
        cmd.env("HOSTNAME", hostname);
        let mut child = cmd.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            input_pump = Some(tokio::spawn(async move {
                while let Some(input) = input_rx.recv().await {
                    if let AttachInput::Bytes(b) = input
                        && stdin.write_all(&b).await.is_err()
                    {
                        return;
                    }
                }
            }));
        }
        output.extend(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        );
        output.extend(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        );
        child
    };
    *c.pgid.lock().unwrap_or_else(|e| e.into_inner()) =
        child.id().and_then(|p| i32::try_from(p).ok());
    *c.input.lock().unwrap_or_else(|e| e.into_inner()) = Some(input_tx);
    for mut out in output {
        let c = c.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0; 8192];
            // EIO on a PTY when its last process exits: the end of output.
            while let Ok(n @ 1..) = out.read(&mut buf).await {
                c.append(&buf[..n]);
            }
        }));
    }
    Ok((child, pumps, input_pump))
}

/// Writes the pod's status from what its containers are doing.
fn report(state: &StandInState, run: &PodRun) {
    let statuses: Vec<Value> = run.containers.iter().map(|c| c.status()).collect();
    let states: Vec<ContainerState> = run
        .containers
        .iter()
        .map(|c| c.state.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .collect();
    let all_running = states
        .iter()
        .all(|s| matches!(s, ContainerState::Running { .. }));
    let all_done = states
        .iter()
        .all(|s| matches!(s, ContainerState::Terminated { .. }));
    let pulling = states.iter().any(|s| matches!(s, ContainerState::Waiting { reason, .. } if reason.contains("Image") || reason == "ContainerCreating"));
    let phase = if all_done {
        if states
            .iter()
            .all(|s| matches!(s, ContainerState::Terminated { exit_code: 0, .. }))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if pulling
        && !states
            .iter()
            .any(|s| matches!(s, ContainerState::Running { .. }))
    {
        "Pending"
    } else {
        "Running"
    };
    let now = timestamp();
    let truth = |b: bool| if b { "True" } else { "False" };
    let _ = state.store.modify(pods_type(), &run.namespace, &run.name, true, false, |current| {
        if current.pointer("/metadata/uid").and_then(Value::as_str) != Some(run.uid.as_str()) {
            return Err(crate::ApiError::conflict(pods_type(), &run.name, "the pod was replaced"));
        }
        let mut next = current.clone();
        let status = &mut next["status"];
        status["phase"] = json!(phase);
        if all_done && run.shutdown.load(Ordering::SeqCst) {
            // A graceful node shutdown's pod reaches its terminal phase with its reason in
            // the same status update: a watcher never sees `Failed` without `Terminated`.
            status["phase"] = json!("Failed");
            status["reason"] = json!("Terminated");
            status["message"] = json!(SHUTDOWN_MESSAGE);
        }
        status["hostIP"] = json!("127.0.0.1");
        status["hostIPs"] = json!([{ "ip": "127.0.0.1" }]);
        status["podIP"] = json!(run.pod_ip);
        status["podIPs"] = json!([{ "ip": run.pod_ip }]);
        status["startTime"] = json!(run.started);
        status["containerStatuses"] = Value::Array(statuses.clone());
        let mut conditions: Vec<Value> = status["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["type"] == "PodScheduled" || c["type"] == "DisruptionTarget")
            .collect();
        for (kind, value) in [("Initialized", true), ("Ready", all_running), ("ContainersReady", all_running), ("PodReadyToStartContainers", true)] {
            conditions.push(json!({ "type": kind, "status": truth(value), "lastProbeTime": null, "lastTransitionTime": now }));
        }
        status["conditions"] = Value::Array(conditions);
        Ok(next)
    });
}

/// `GET …/pods/{name}/log`: the container's output (`container`, `tailLines`, `follow`).
pub(crate) async fn logs(
    state: &Arc<StandInState>,
    namespace: &str,
    name: &str,
    query: &crate::api::Query,
) -> Result<axum::response::Response, crate::ApiError> {
    use axum::response::IntoResponse as _;
    let pods = pods_type();
    let pod = state.store.get(pods, namespace, name)?;
    let Some(run) = state.kubelet.pod(namespace, name) else {
        let container = query
            .get("container")
            .map(str::to_owned)
            .or_else(|| {
                pod.pointer("/spec/containers/0/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        return Err(crate::ApiError::bad_request(format!(
            "container {container:?} in pod {name:?} is waiting to start: ContainerCreating"
        )));
    };
    let container = run.container(query.get("container"))?.clone();
    if let Some(reason) = container.waiting_to_start() {
        return Err(crate::ApiError::bad_request(format!(
            "container {:?} in pod {name:?} is waiting to start: {reason}",
            container.name
        )));
    }
    let (mut past, mut later) = container.logs();
    if let Some(n) = query.number("tailLines")? {
        let text = String::from_utf8_lossy(&past).into_owned();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let keep = usize::try_from(n).unwrap_or(usize::MAX).min(lines.len());
        past = lines[lines.len() - keep..].concat().into_bytes();
    }
    let headers = [(axum::http::header::CONTENT_TYPE, "text/plain")];
    if !matches!(query.get("follow"), Some("true" | "1")) {
        return Ok((axum::http::StatusCode::OK, headers, past).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    tokio::spawn(async move {
        if !past.is_empty() && tx.send(bytes::Bytes::from(past)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                chunk = later.recv() => match chunk {
                    Ok(chunk) => {
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if container.terminated() || run.stop.borrow().is_some() {
                        while let Ok(chunk) = later.try_recv() {
                            let _ = tx.send(chunk).await;
                        }
                        return;
                    }
                }
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok((
        axum::http::StatusCode::OK,
        headers,
        crate::api::streaming(stream),
    )
        .into_response())
}

/// How long a deleted pod on a node is given to stop: the request's grace period, else the
/// pod's `terminationGracePeriodSeconds`; `None` (delete at once) for a pod on no node, or
/// a grace period of 0.
pub(crate) fn deletion_grace(
    state: &StandInState,
    namespace: &str,
    name: &str,
    options: &Value,
) -> Option<u64> {
    let pod = state.store.get(pods_type(), namespace, name).ok()?;
    if str_at(&pod, "/spec/nodeName").is_empty() || terminal(&pod) {
        return None;
    }
    let grace = options
        .get("gracePeriodSeconds")
        .and_then(Value::as_u64)
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_u64)
        })
        .unwrap_or(30);
    (grace > 0).then_some(grace)
}
