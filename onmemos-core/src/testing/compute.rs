//! The `ComputeProvider` conformance suite: what every place sessions run must do, whatever it
//! is (processes on this machine, pods). Each check provisions its own workspace and starts its
//! own sessions, so checks may share one provider.
//!
//! ```ignore
//! onmemos_core::compute_conformance!(|| async { Some(Arc::new(my_compute()) as Arc<dyn ComputeProvider>) });
//! ```
//!
//! Checks run commands with `sh`, `cat`, `printf`, `sleep`, `head`, `tr` and `stty`, which any
//! session image is expected to have.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::error::ErrorKind;
use crate::id::{SessionId, WorkspaceId};
use crate::model::{Placement, Resources};
use crate::ports::ComputeProvider;
use crate::ports::compute::{
    ComputeStatus, ExecEvent, ExecRequest, FilesMount, PtySize, SessionSpec, WorkspaceSpec,
};

/// The longest a check waits for something a provider does asynchronously.
const PATIENCE: Duration = Duration::from_secs(60);

/// What every check's sessions start from: a small session with one variable of its own.
fn spec(session: SessionId, workspace: WorkspaceId) -> SessionSpec {
    SessionSpec {
        session,
        workspace,
        image: "python:3.12-slim".into(),
        resources: Resources {
            cpu_millis: 500,
            memory_mib: 512,
            gpu: 0,
            disk_gib: 1,
        },
        env: BTreeMap::from([("FROM_TEMPLATE".to_owned(), "yes".to_owned())]),
        placement: Placement::OnDemand,
        files: None,
        template: None,
        max_duration: None,
    }
}

/// A session started in a workspace provisioned for it: (workspace, session).
async fn started(compute: &Arc<dyn ComputeProvider>) -> (WorkspaceId, SessionId) {
    started_as(compute, spec).await
}

/// The same, the session made by `make` (from its id and its workspace's).
async fn started_as(
    compute: &Arc<dyn ComputeProvider>,
    make: impl Fn(SessionId, WorkspaceId) -> SessionSpec,
) -> (WorkspaceId, SessionId) {
    let workspace = WorkspaceId::new();
    let session = SessionId::new();
    compute
        .provision_workspace(&WorkspaceSpec {
            workspace,
            owner: crate::id::UserId::new(),
            name: "conformance".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    compute
        .start_session(&make(session, workspace))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    running(compute, session).await;
    (workspace, session)
}

/// Waits until a started session runs.
async fn running(compute: &Arc<dyn ComputeProvider>, session: SessionId) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match compute.status(session).await {
            Ok(ComputeStatus::Running) => return,
            Ok(ComputeStatus::Starting) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("a started session is {other:?}, not running"),
        }
    }
}

async fn finished(compute: &Arc<dyn ComputeProvider>, workspace: WorkspaceId, session: SessionId) {
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    compute
        .teardown_workspace(workspace)
        .await
        .unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// What a command printed, byte for byte, and how it ended.
struct Ran {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
    /// How many stdout events carried the output.
    stdout_chunks: usize,
}

async fn run(
    compute: &Arc<dyn ComputeProvider>,
    session: SessionId,
    script: &str,
    env: &[(&str, &str)],
    stdin: Option<&'static [u8]>,
    timeout: Duration,
) -> Ran {
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        stdin: stdin.map(Bytes::from_static),
        timeout,
    };
    let mut events = compute
        .exec(session, request)
        .await
        .unwrap_or_else(|e| panic!("exec {script:?}: {e}"));
    let mut ran = Ran {
        stdout: Vec::new(),
        stderr: Vec::new(),
        exit: None,
        stdout_chunks: 0,
    };
    while let Some(event) = events.next().await {
        match event.unwrap_or_else(|e| panic!("exec {script:?}: {e}")) {
            ExecEvent::Stdout(b) => {
                ran.stdout.extend_from_slice(&b);
                ran.stdout_chunks += 1;
            }
            ExecEvent::Stderr(b) => ran.stderr.extend_from_slice(&b),
            ExecEvent::Exit(code) => {
                ran.exit = code;
                return ran;
            }
        }
    }
    panic!("exec {script:?}: the stream ended without an exit event");
}

/// Start → running and listed; stop → no longer running nor listed; stopping again, or a
/// session never started, is not an error.
pub async fn lifecycle_status_and_listing(compute: Arc<dyn ComputeProvider>) {
    let (workspace, session) = started(&compute).await;
    let listed = compute
        .running_sessions()
        .await
        .unwrap_or_else(|e| panic!("running_sessions: {e}"));
    assert!(listed.contains(&session), "a running session is not listed");
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let status = compute
        .status(session)
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    assert!(
        !matches!(status, ComputeStatus::Running | ComputeStatus::Starting),
        "a stopped session is {status:?}"
    );
    let listed = compute
        .running_sessions()
        .await
        .unwrap_or_else(|e| panic!("running_sessions: {e}"));
    assert!(
        !listed.contains(&session),
        "a stopped session is still listed"
    );
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stopping a stopped session: {e}"));
    compute
        .stop_session(SessionId::new())
        .await
        .unwrap_or_else(|e| panic!("stopping an unknown session: {e}"));
    compute
        .teardown_workspace(workspace)
        .await
        .unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// Exec: the session's and the request's environment, standard input, stdout and stderr kept
/// apart, and the exit code.
pub async fn exec_env_stdin_streams_and_exit_codes(compute: Arc<dyn ComputeProvider>) {
    let (workspace, session) = started(&compute).await;
    let ran = run(
        &compute,
        session,
        r#"echo out; echo err >&2; cat; printf '%s %s' "$FROM_TEMPLATE" "$FROM_REQUEST"; exit 3"#,
        &[("FROM_REQUEST", "42")],
        Some(b"piped in\n"),
        PATIENCE,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "out\npiped in\nyes 42"
    );
    assert_eq!(String::from_utf8_lossy(&ran.stderr), "err\n");
    assert_eq!(ran.exit, Some(3));
    let ok = run(&compute, session, "true", &[], None, PATIENCE).await;
    assert_eq!((ok.exit, ok.stdout.len()), (Some(0), 0));
    finished(&compute, workspace, session).await;
}

/// Exec output is the bytes the command wrote, in order: multi-byte characters written in two
/// halves, binary bytes, and a megabyte that arrives in many chunks.
pub async fn exec_output_is_byte_exact(compute: Arc<dyn ComputeProvider>) {
    let (workspace, session) = started(&compute).await;
    let ran = run(
        &compute,
        session,
        r"printf '\303'; sleep 0.2; printf '\251'; printf '\000\377\376'; head -c 1048576 /dev/zero | tr '\000' 'x'; printf '\342\202'; sleep 0.2; printf '\254'",
        &[],
        None,
        PATIENCE,
    )
    .await;
    let mut want = "é".as_bytes().to_vec();
    want.extend_from_slice(&[0x00, 0xff, 0xfe]);
    want.extend(std::iter::repeat_n(b'x', 1 << 20));
    want.extend_from_slice("€".as_bytes());
    assert_eq!(ran.stdout.len(), want.len(), "output lost or added");
    assert!(ran.stdout == want, "output changed on its way");
    assert!(
        ran.stdout_chunks > 1,
        "a megabyte came in one chunk: the check proves little"
    );
    assert_eq!(ran.exit, Some(0));
    finished(&compute, workspace, session).await;
}

/// A command past its timeout is killed and ends without an exit code; the session lives on.
pub async fn exec_timeout_kills_the_command(compute: Arc<dyn ComputeProvider>) {
    let (workspace, session) = started(&compute).await;
    let ran = run(
        &compute,
        session,
        "echo started; sleep 300",
        &[],
        None,
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "started\n");
    assert_eq!(ran.exit, None, "a command past its timeout was not killed");
    let after = run(&compute, session, "echo alive", &[], None, PATIENCE).await;
    assert_eq!(String::from_utf8_lossy(&after.stdout), "alive\n");
    finished(&compute, workspace, session).await;
}

/// The terminal: what is typed runs, its output is read back, and a resize reaches it.
pub async fn pty_write_read_and_resize(compute: Arc<dyn ComputeProvider>) {
    let (workspace, session) = started(&compute).await;
    let pty = compute
        .attach_pty(session, PtySize { rows: 24, cols: 80 })
        .await
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let read_until = |needle: &'static str| {
        let pty = &pty;
        async move {
            let mut seen = Vec::new();
            tokio::time::timeout(PATIENCE, async {
                while !String::from_utf8_lossy(&seen).contains(needle) {
                    match pty.read().await {
                        Ok(Some(b)) => seen.extend_from_slice(&b),
                        Ok(None) => panic!("the terminal closed before {needle:?}"),
                        Err(e) => panic!("read: {e}"),
                    }
                }
            })
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {needle:?} from the terminal: {}",
                    String::from_utf8_lossy(&seen)
                )
            });
        }
    };
    pty.write(b"echo typed-$((6*7))\n")
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    read_until("typed-42").await;
    pty.resize(PtySize {
        rows: 41,
        cols: 113,
    })
    .await
    .unwrap_or_else(|e| panic!("resize: {e}"));
    pty.write(b"stty size | tr ' ' x\n")
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    read_until("41x113").await;
    finished(&compute, workspace, session).await;
}

/// Usage counts the session's processes; sessions the provider never ran are `NotFound`.
pub async fn usage_and_unknown_sessions(compute: Arc<dyn ComputeProvider>) {
    let (workspace, session) = started(&compute).await;
    let usage = compute
        .usage(session)
        .await
        .unwrap_or_else(|e| panic!("usage: {e}"));
    assert!(
        usage.processes >= 1,
        "a running session has no process: {usage:?}"
    );
    let unknown = SessionId::new();
    let exec = compute
        .exec(
            unknown,
            ExecRequest {
                command: vec!["true".into()],
                env: BTreeMap::new(),
                stdin: None,
                timeout: PATIENCE,
            },
        )
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(
        exec,
        Some(ErrorKind::NotFound),
        "exec in an unknown session"
    );
    let attach = compute
        .attach_pty(unknown, PtySize { rows: 24, cols: 80 })
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(
        attach,
        Some(ErrorKind::NotFound),
        "attach to an unknown session"
    );
    assert_eq!(
        compute.status(unknown).await.ok(),
        Some(ComputeStatus::Gone),
        "status of an unknown session"
    );
    finished(&compute, workspace, session).await;
}

/// Stopping a session kills everything it started, however it detached (`setsid`, a
/// double fork, `nohup`): each writes a heartbeat into the workspace's files, and after the
/// stop a new session of the same workspace sees every heartbeat stand still.
///
/// The files are a directory of this machine ([`FilesMount::Dir`]), which a pod sees only on
/// a single-node cluster whose node is this machine (the stand-in's).
pub async fn stop_kills_everything_the_session_started(compute: Arc<dyn ComputeProvider>) {
    let files = std::env::temp_dir().join(format!("onmemos-conformance-{}", SessionId::new()));
    std::fs::create_dir_all(&files).unwrap_or_else(|e| panic!("create {files:?}: {e}"));
    let with_files = |session, workspace| SessionSpec {
        files: Some(FilesMount::Dir(files.clone())),
        ..spec(session, workspace)
    };
    let (workspace, session) = started_as(&compute, with_files).await;
    let beat = |name: &str| format!("while :; do date +%s%N >> files/{name}; sleep 0.05; done");
    let script = format!(
        "setsid sh -c '{}' </dev/null >/dev/null 2>&1 & \
         ( sh -c '{}' </dev/null >/dev/null 2>&1 & ) ; \
         nohup sh -c '{}' </dev/null >/dev/null 2>&1 & \
         sleep 0.5; wc -l < files/beat-setsid; wc -l < files/beat-fork; wc -l < files/beat-nohup",
        beat("beat-setsid"),
        beat("beat-fork"),
        beat("beat-nohup")
    );
    let ran = run(&compute, session, &script, &[], None, PATIENCE).await;
    let counts = String::from_utf8_lossy(&ran.stdout).into_owned();
    assert!(
        counts.split_whitespace().count() == 3
            && counts
                .split_whitespace()
                .all(|n| n.parse::<u64>().is_ok_and(|n| n > 0)),
        "the detached writers did not start: {counts:?} {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    // A new session of the same workspace watches the heartbeats.
    let watcher = SessionId::new();
    compute
        .start_session(&with_files(watcher, workspace))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    running(&compute, watcher).await;
    let count = "wc -l < files/beat-setsid; wc -l < files/beat-fork; wc -l < files/beat-nohup";
    let before = run(&compute, watcher, count, &[], None, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = run(&compute, watcher, count, &[], None, PATIENCE).await;
    assert_eq!(
        String::from_utf8_lossy(&before.stdout),
        String::from_utf8_lossy(&after.stdout),
        "a process the stopped session started still runs (setsid, double fork, nohup)"
    );
    finished(&compute, workspace, watcher).await;
    let _ = std::fs::remove_dir_all(&files);
}

/// A provider made again over the same state — the server restarted — finds the sessions the
/// first one started in `running_sessions`, and stopping one through it kills it: the first
/// then reports it gone, and neither lists it any more. Both providers exist while the session
/// starts, so one that learns of its compute through a watch may list it a moment after the
/// first saw it run (the watch's delay), but within the suite's patience.
pub async fn running_sessions_after_a_restart(
    compute: Arc<dyn ComputeProvider>,
    restarted: Arc<dyn ComputeProvider>,
) {
    let (workspace, session) = started(&compute).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let running = restarted
            .running_sessions()
            .await
            .unwrap_or_else(|e| panic!("running_sessions after the restart: {e}"));
        if running.contains(&session) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a session started before the restart is not listed after it: {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    restarted
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop after the restart: {e}"));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listed = restarted
            .running_sessions()
            .await
            .unwrap_or_else(|e| panic!("running_sessions: {e}"))
            .contains(&session);
        let status = compute
            .status(session)
            .await
            .unwrap_or_else(|e| panic!("status: {e}"));
        if !listed && !matches!(status, ComputeStatus::Running | ComputeStatus::Starting) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session still runs after a stop through the restarted provider: listed {listed}, {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first provider's own stop of a session that is gone is not an error.
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stopping a gone session: {e}"));
    restarted
        .teardown_workspace(workspace)
        .await
        .unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// Runs every check on `compute`, one after another; returns their names.
pub async fn run_all(compute: Arc<dyn ComputeProvider>) -> Vec<&'static str> {
    let mut held = Vec::new();
    macro_rules! run {
        ($($check:ident;)+) => {$(
            $check(compute.clone()).await;
            held.push(stringify!($check));
        )+};
    }
    run! {
        lifecycle_status_and_listing;
        exec_env_stdin_streams_and_exit_codes;
        exec_output_is_byte_exact;
        exec_timeout_kills_the_command;
        pty_write_read_and_resize;
        usage_and_unknown_sessions;
        stop_kills_everything_the_session_started;
    }
    held
}

/// One test per check of the `ComputeProvider` suite, each with a provider from `make`, an
/// async factory returning `Option<Arc<dyn ComputeProvider>>` (`None` skips the check: the
/// factory says why).
///
/// With `restart = make_pair`, an async factory of two providers over the same state (the
/// second is the first after a server restart: same root, same namespace), it also runs
/// [`running_sessions_after_a_restart`](crate::testing::compute::running_sessions_after_a_restart).
#[macro_export]
macro_rules! compute_conformance {
    ($make:expr, restart = $pair:expr) => {
        $crate::compute_conformance!($make);

        #[::tokio::test]
        async fn running_sessions_after_a_restart() {
            let pair = $pair;
            let pair: Option<(
                ::std::sync::Arc<dyn $crate::ports::ComputeProvider>,
                ::std::sync::Arc<dyn $crate::ports::ComputeProvider>,
            )> = pair().await;
            if let Some((compute, restarted)) = pair {
                $crate::testing::compute::running_sessions_after_a_restart(compute, restarted)
                    .await;
            }
        }
    };
    ($make:expr) => {
        $crate::compute_conformance!(@checks $make;
            lifecycle_status_and_listing,
            exec_env_stdin_streams_and_exit_codes,
            exec_output_is_byte_exact,
            exec_timeout_kills_the_command,
            pty_write_read_and_resize,
            usage_and_unknown_sessions,
            stop_kills_everything_the_session_started,
        );
    };
    (@checks $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let make = $make;
                let compute: Option<::std::sync::Arc<dyn $crate::ports::ComputeProvider>> =
                    make().await;
                if let Some(compute) = compute {
                    $crate::testing::compute::$check(compute).await;
                }
            }
        )+
    };
}
