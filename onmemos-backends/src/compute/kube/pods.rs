//! What the cluster says of the session pods, kept by one watch per server (not by polling):
//! each pod's latest state, the sessions whose pods ended without OnMemOS asking, and the
//! interruptions announced for running ones.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use onmemos_core::id::SessionId;
use onmemos_core::ports::compute::{ComputeNotice, ComputeStatus};
use tokio::sync::watch;

use super::manifests::{CONTAINER, MANAGED_BY, SESSION_LABEL};

/// How long the end of a pod nobody stopped is remembered for the monitor to see.
const ENDED_MEMORY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The session pods as the watch last saw them.
#[derive(Debug)]
pub(super) struct PodCache {
    state: Mutex<CacheState>,
    changed: watch::Sender<u64>,
    /// The start of the names of this installation's workspace namespaces: pods elsewhere
    /// (another installation sharing the cluster, with its own prefix) are none of its own.
    namespaces: String,
}

#[derive(Debug, Default)]
struct CacheState {
    /// Whether the first list arrived.
    synced: bool,
    pods: HashMap<SessionId, Arc<Pod>>,
    /// The pods of a list in progress (the watch restarted).
    relist: Option<HashMap<SessionId, Arc<Pod>>>,
    /// Sessions whose pods went without OnMemOS deleting them, with how they ended.
    ended: HashMap<SessionId, (Instant, ComputeStatus)>,
    /// Sessions whose pods OnMemOS deletes.
    stopping: HashSet<SessionId>,
    /// Sessions whose interruption was announced.
    announced: HashSet<SessionId>,
    /// When the watch first saw each session's pod ended: the moment its session ends. The
    /// pod's own `finishedAt` counts whole seconds, and a session runs until its pod ends.
    ended_at: HashMap<SessionId, DateTime<Utc>>,
    notices: Vec<ComputeNotice>,
}

fn lock(m: &Mutex<CacheState>) -> std::sync::MutexGuard<'_, CacheState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The session a pod runs, from its label.
fn session_of(pod: &Pod) -> Option<SessionId> {
    pod.metadata
        .labels
        .as_ref()?
        .get(SESSION_LABEL)?
        .parse()
        .ok()
}

impl PodCache {
    pub(super) fn new(namespaces: String) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            changed: watch::Sender::new(0),
            namespaces,
        })
    }

    /// The session of a pod of this installation's namespaces.
    pub(super) fn ours(&self, pod: &Pod) -> Option<SessionId> {
        pod.metadata
            .namespace
            .as_deref()
            .is_some_and(|ns| ns.starts_with(&self.namespaces))
            .then(|| session_of(pod))
            .flatten()
    }

    /// Watches the session pods of every namespace until the task is aborted.
    pub(super) fn spawn_watch(
        self: &Arc<Self>,
        client: kube::Client,
    ) -> tokio::task::JoinHandle<()> {
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::all(client);
            let config =
                watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
            let mut events = watcher::watcher(pods, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let Some(cache) = cache.upgrade() else { return };
                match event {
                    Ok(event) => cache.apply(event),
                    Err(e) => {
                        tracing::warn!(error = %e, "the session pod watch failed; it restarts")
                    }
                }
            }
        })
    }

    fn apply(&self, event: Event<Pod>) {
        let now = Utc::now();
        {
            let mut s = lock(&self.state);
            match event {
                Event::Init => s.relist = Some(HashMap::new()),
                Event::InitApply(pod) => {
                    if let Some(id) = self.ours(&pod) {
                        let pod = Arc::new(pod);
                        s.see(id, &pod, now, false);
                        s.relist.get_or_insert_default().insert(id, pod);
                    }
                }
                Event::InitDone => {
                    let listed = s.relist.take().unwrap_or_default();
                    // Pods that went while the watch was down ended too.
                    let gone: Vec<(SessionId, Arc<Pod>)> = s
                        .pods
                        .iter()
                        .filter(|(id, _)| !listed.contains_key(id))
                        .map(|(id, pod)| (*id, pod.clone()))
                        .collect();
                    for (id, pod) in gone {
                        s.went(id, &pod, finished_at(&pod).unwrap_or(now));
                    }
                    s.pods = listed;
                    s.synced = true;
                }
                Event::Apply(pod) => {
                    if let Some(id) = self.ours(&pod) {
                        let pod = Arc::new(pod);
                        s.see(id, &pod, now, true);
                        s.pods.insert(id, pod);
                    }
                }
                Event::Delete(pod) => {
                    if let Some(id) = self.ours(&pod) {
                        s.pods.remove(&id);
                        s.went(id, &pod, now);
                    }
                }
            }
            let horizon = Instant::now();
            let CacheState {
                pods,
                ended,
                ended_at,
                announced,
                ..
            } = &mut *s;
            ended.retain(|_, (at, _)| horizon.duration_since(*at) < ENDED_MEMORY);
            // What is known of a session lasts as long as its pod or its end is remembered.
            ended_at.retain(|id, _| pods.contains_key(id) || ended.contains_key(id));
            announced.retain(|id| pods.contains_key(id) || ended.contains_key(id));
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Waits for the next change the watch sees.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether the first list arrived.
    pub(super) fn synced(&self) -> bool {
        lock(&self.state).synced
    }

    /// The pod of a session, as last seen.
    pub(super) fn pod(&self, session: SessionId) -> Option<Arc<Pod>> {
        lock(&self.state).pods.get(&session).cloned()
    }

    /// The state of a session's compute.
    pub(super) fn status(&self, session: SessionId) -> ComputeStatus {
        let s = lock(&self.state);
        match s.pods.get(&session) {
            Some(pod) => match pod_status(pod) {
                ComputeStatus::Preempted { at, reason } => ComputeStatus::Preempted {
                    at: s.ended_at.get(&session).copied().unwrap_or(at),
                    reason,
                },
                status => status,
            },
            None => s
                .ended
                .get(&session)
                .map_or(ComputeStatus::Gone, |(_, status)| status.clone()),
        }
    }

    /// The sessions whose pods run or start.
    pub(super) fn running(&self) -> Vec<SessionId> {
        lock(&self.state)
            .pods
            .iter()
            .filter(|(_, pod)| {
                matches!(
                    pod_status(pod),
                    ComputeStatus::Running | ComputeStatus::Starting
                )
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// OnMemOS deletes this session's pod: its end is not a preemption.
    pub(super) fn stopping(&self, session: SessionId) {
        let mut s = lock(&self.state);
        s.stopping.insert(session);
        s.ended.remove(&session);
    }

    /// The deletion is over (or failed): forget it.
    pub(super) fn stopped(&self, session: SessionId) {
        let mut s = lock(&self.state);
        s.stopping.remove(&session);
        s.ended.remove(&session);
        s.announced.remove(&session);
        s.ended_at.remove(&session);
    }

    /// The notices gathered since the last call.
    pub(super) fn take_notices(&self) -> Vec<ComputeNotice> {
        std::mem::take(&mut lock(&self.state).notices)
    }
}

impl CacheState {
    /// Looks at a pod as it is now: an interruption is announced once, and the moment it
    /// ended is noted.
    fn see(&mut self, id: SessionId, pod: &Pod, now: DateTime<Utc>, live: bool) {
        if !matches!(
            pod_status(pod),
            ComputeStatus::Running | ComputeStatus::Starting
        ) {
            // Seen in a list after the watch was down, it ended when its container says.
            let at = if live {
                now
            } else {
                finished_at(pod).unwrap_or(now)
            };
            self.ended_at.entry(id).or_insert(at);
        }
        if let Some(message) = disruption(pod)
            && !self.stopping.contains(&id)
            && self.announced.insert(id)
        {
            self.notices.push(ComputeNotice::Interruption {
                session: id,
                message,
            });
        }
    }

    /// A pod left the cluster (`at`, unless its end was seen before): unless OnMemOS deleted
    /// it, its session was preempted.
    fn went(&mut self, id: SessionId, pod: &Pod, at: DateTime<Utc>) {
        let at = *self.ended_at.entry(id).or_insert(at);
        if self.stopping.contains(&id) {
            return;
        }
        let status = match pod_status(pod) {
            ComputeStatus::Preempted { reason, .. } => ComputeStatus::Preempted { at, reason },
            ended @ (ComputeStatus::Exited(_) | ComputeStatus::Failed { .. }) => ended,
            _ => ComputeStatus::Preempted {
                at,
                reason: disruption(pod)
                    .unwrap_or_else(|| "the session's pod was deleted outside OnMemOS".to_owned()),
            },
        };
        self.ended.insert(id, (Instant::now(), status));
    }
}

/// The message of a pod's `DisruptionTarget` condition, when it is true: eviction, node
/// shutdown, preemption — the cluster is about to take it back.
fn disruption(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        .map(|c| {
            let reason = c.reason.clone().unwrap_or_default();
            match c.message.as_deref() {
                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                _ => reason,
            }
        })
}

/// When the session container stopped, if it did.
fn finished_at(pod: &Pod) -> Option<DateTime<Utc>> {
    let state = session_container(pod)?.state.as_ref()?;
    state
        .terminated
        .as_ref()?
        .finished_at
        .as_ref()
        .and_then(utc)
}

/// A Kubernetes time as a chrono one.
pub(super) fn utc(
    time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(time.0.as_millisecond())
}

fn session_container(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER)
}

/// What a pod's state means for its session.
pub(super) fn pod_status(pod: &Pod) -> ComputeStatus {
    let status = pod.status.clone().unwrap_or_default();
    let container = session_container(pod);
    let state = container.and_then(|c| c.state.clone()).unwrap_or_default();
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        if matches!(
            reason,
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
        ) {
            let image = container.map(|c| c.image.clone()).unwrap_or_default();
            return ComputeStatus::Failed {
                reason: format!(
                    "the image {image:?} cannot be pulled ({reason}): {}",
                    waiting.message.as_deref().unwrap_or("no message")
                ),
            };
        }
        if matches!(
            reason,
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError"
        ) {
            return ComputeStatus::Failed {
                reason: format!(
                    "the session's container cannot start ({reason}): {}",
                    waiting.message.as_deref().unwrap_or("no message")
                ),
            };
        }
    }
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let pod_reason = status.reason.as_deref().unwrap_or_default();
    match phase {
        "Succeeded" | "Failed" => {
            if pod_reason == "DeadlineExceeded" {
                ComputeStatus::Failed {
                    reason: "the session's pod ran past its active deadline".to_owned(),
                }
            } else if let Some(message) = disruption(pod).or_else(|| {
                matches!(
                    pod_reason,
                    "Evicted" | "Terminated" | "Shutdown" | "NodeShutdown" | "Preempting"
                )
                .then(|| {
                    format!(
                        "{pod_reason}: {}",
                        status.message.as_deref().unwrap_or_default()
                    )
                })
            }) {
                ComputeStatus::Preempted {
                    at: finished_at(pod).unwrap_or_else(Utc::now),
                    reason: message,
                }
            } else {
                ComputeStatus::Exited(
                    state
                        .terminated
                        .as_ref()
                        .map(|t| t.exit_code)
                        .or(Some(i32::from(phase != "Succeeded"))),
                )
            }
        }
        "Running" if state.running.is_some() => ComputeStatus::Running,
        "Running" => match &state.terminated {
            Some(t) => ComputeStatus::Exited(Some(t.exit_code)),
            None => ComputeStatus::Starting,
        },
        _ => ComputeStatus::Starting,
    }
}

/// Why a pending pod is not scheduled, when the scheduler said.
pub(super) fn unschedulable(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| {
            c.message
                .clone()
                .unwrap_or_else(|| c.reason.clone().unwrap_or_default())
        })
}
