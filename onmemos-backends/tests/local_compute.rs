//! `LocalCompute` with real processes and a real PTY.
#![cfg(feature = "local-compute")]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use onmemos_backends::compute::LocalCompute;
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::model::{Placement, Resources};
use onmemos_core::ports::ComputeProvider;
use onmemos_core::ports::compute::{
    ComputeStatus, ExecEvent, ExecRequest, PtySize, SessionSpec, WorkspaceSpec,
};

fn spec(session: SessionId, workspace: WorkspaceId) -> SessionSpec {
    SessionSpec {
        session,
        workspace,
        image: String::new(),
        resources: Resources {
            cpu_millis: 1000,
            memory_mib: 1024,
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

async fn started(compute: &LocalCompute, workspace: WorkspaceId) -> SessionId {
    let session = SessionId::new();
    compute
        .provision_workspace(&WorkspaceSpec {
            workspace,
            owner: onmemos_core::id::UserId::new(),
            name: "ws".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    compute
        .start_session(&spec(session, workspace))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    session
}

/// Runs `script` with `sh -c` in the session: (stdout, stderr, exit code).
async fn run(
    compute: &LocalCompute,
    session: SessionId,
    script: &str,
    timeout: Duration,
) -> (String, String, Option<i32>) {
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: BTreeMap::from([("FROM_REQUEST".to_owned(), "42".to_owned())]),
        stdin: Some(Bytes::from_static(b"piped in\n")),
        timeout,
    };
    let mut events = compute
        .exec(session, request)
        .await
        .unwrap_or_else(|e| panic!("exec: {e}"));
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
    let mut exited = false;
    while let Some(event) = events.next().await {
        match event.unwrap_or_else(|e| panic!("exec event: {e}")) {
            ExecEvent::Stdout(b) => out.extend_from_slice(&b),
            ExecEvent::Stderr(b) => err.extend_from_slice(&b),
            ExecEvent::Exit(c) => {
                code = c;
                exited = true;
            }
        }
    }
    assert!(exited, "the stream ended without an exit event");
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        code,
    )
}

/// Live processes carrying the session's marker, from /proc.
fn marked(session: SessionId) -> Vec<i32> {
    onmemos_backends::testing::session_processes(&session.to_string())
}

#[tokio::test]
async fn exec_runs_in_the_workspace_with_its_environment_and_exit_code() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::unsandboxed(root.path());
    let workspace = WorkspaceId::new();
    let session = started(&compute, workspace).await;
    let (out, err, code) = run(
        &compute,
        session,
        "pwd; echo \"$FROM_TEMPLATE $FROM_REQUEST\"; cat; echo oops >&2; exit 3",
        Duration::from_secs(10),
    )
    .await;
    let dir = compute.workspace_dir(workspace);
    assert_eq!(
        out,
        format!("{}\nyes 42\npiped in\n", dir.display()),
        "stderr: {err}"
    );
    assert_eq!(err, "oops\n");
    assert_eq!(code, Some(3));

    let (_, _, code) = run(&compute, session, "sleep 30", Duration::from_millis(200)).await;
    assert_eq!(code, None, "a command past its timeout is killed");
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
}

#[tokio::test]
async fn the_workspace_directory_outlives_its_sessions() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::unsandboxed(root.path());
    let workspace = WorkspaceId::new();
    let first = started(&compute, workspace).await;
    run(
        &compute,
        first,
        "echo kept > notes.txt",
        Duration::from_secs(10),
    )
    .await;
    compute
        .stop_session(first)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let second = SessionId::new();
    compute
        .start_session(&spec(second, workspace))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let (out, _, _) = run(&compute, second, "cat notes.txt", Duration::from_secs(10)).await;
    assert_eq!(out, "kept\n");
    compute
        .stop_session(second)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
}

#[tokio::test]
async fn stop_kills_the_whole_tree_even_processes_that_left_the_session() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::unsandboxed(root.path());
    let session = started(&compute, WorkspaceId::new()).await;
    // Background children of a command (off its pipes, so the command ends at once), one of
    // which starts a terminal session of its own, one a double fork.
    let (out, _, code) = run(
        &compute,
        session,
        "exec >/dev/null 2>&1; sleep 1000 & setsid sleep 1001 & (sleep 1002 &)",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!((out.as_str(), code), ("", Some(0)));
    // And a background job of the interactive shell.
    let pty = compute
        .attach_pty(session, PtySize { rows: 24, cols: 80 })
        .await
        .unwrap_or_else(|e| panic!("attach: {e}"));
    pty.write(b"sleep 1003 &\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut waited = 0;
    while marked(session).len() < 5 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    let before = marked(session);
    assert!(
        before.len() >= 5,
        "shell and four sleeps expected, found {before:?}"
    );
    let usage = compute
        .usage(session)
        .await
        .unwrap_or_else(|e| panic!("usage: {e}"));
    assert!(usage.processes >= 5 && usage.memory_bytes > 0, "{usage:?}");

    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    assert_eq!(marked(session), Vec::<i32>::new(), "orphans after stop");
    assert_eq!(
        compute.status(session).await.ok(),
        Some(ComputeStatus::Gone)
    );
    assert!(
        compute
            .running_sessions()
            .await
            .map(|s| s.is_empty())
            .unwrap_or(false)
    );
}

#[tokio::test]
async fn the_terminal_echoes_what_the_shell_prints() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::unsandboxed(root.path());
    let session = started(&compute, WorkspaceId::new()).await;
    assert_eq!(
        compute.status(session).await.ok(),
        Some(ComputeStatus::Running)
    );
    let pty = compute
        .attach_pty(
            session,
            PtySize {
                rows: 40,
                cols: 120,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("attach: {e}"));
    pty.write(b"echo \"size $(stty size) sum $((40+2))\"\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(bytes)) = pty.read().await {
            seen.extend_from_slice(&bytes);
            if String::from_utf8_lossy(&seen).contains("size 40 120 sum 42") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        found,
        "terminal output: {:?}",
        String::from_utf8_lossy(&seen)
    );
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
}

#[tokio::test]
async fn unknown_sessions_and_empty_commands_are_clear_errors() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::new(root.path());
    assert_eq!(
        compute.capabilities().sandboxed,
        which_bwrap(),
        "sandboxed exactly when bubblewrap is installed"
    );
    let missing = SessionId::new();
    let request = ExecRequest {
        command: vec!["true".into()],
        env: BTreeMap::new(),
        stdin: None,
        timeout: Duration::from_secs(1),
    };
    assert_eq!(
        compute.exec(missing, request).await.err().map(|e| e.kind()),
        Some(onmemos_core::ErrorKind::NotFound)
    );
    assert!(
        compute.stop_session(missing).await.is_ok(),
        "stopping a gone session is fine"
    );
    let session = started(&compute, WorkspaceId::new()).await;
    let empty = ExecRequest {
        command: Vec::new(),
        env: BTreeMap::new(),
        stdin: None,
        timeout: Duration::from_secs(1),
    };
    let err = compute.exec(session, empty).await.err();
    assert_eq!(err.as_ref().and_then(|e| e.field()), Some("command"));
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
}

/// Whether bubblewrap is installed and can create namespaces here.
fn which_bwrap() -> bool {
    std::process::Command::new("bwrap")
        .args(["--unshare-pid", "--ro-bind", "/", "/", "--", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn with_bubblewrap_a_session_sees_only_its_workspace_and_its_own_processes() {
    if !which_bwrap() {
        eprintln!(
            "NOTICE: bubblewrap is not usable here (apt-get install bubblewrap); the sandbox is not tested"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::new(root.path());
    assert!(compute.capabilities().sandboxed);
    let workspace = WorkspaceId::new();
    let session = started(&compute, workspace).await;
    std::fs::write(compute.workspace_dir(workspace).join("mine.txt"), "ok")
        .unwrap_or_else(|e| panic!("{e}"));
    let host_dir = root.path().display().to_string();
    let script = format!(
        "pwd; cat mine.txt; echo; test -e {host_dir} && echo host-visible; ls /proc | grep -c '^[0-9]'"
    );
    let (out, _, code) = run(&compute, session, &script, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"/workspace"), "{out}");
    assert_eq!(lines.get(1), Some(&"ok"), "{out}");
    assert!(
        !out.contains("host-visible"),
        "the host's directories are visible: {out}"
    );
    // Its own PID namespace: a handful of processes, not the host's.
    let visible: usize = lines
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert!(
        visible < 10,
        "{visible} processes visible inside the sandbox"
    );
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    assert_eq!(marked(session), Vec::<i32>::new(), "orphans after stop");
}

/// Whether `pid` is gone (or a zombie waiting to be reaped).
fn dead(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[tokio::test]
async fn without_a_working_sandbox_sessions_are_refused_unless_the_operator_chose_so() {
    use onmemos_core::ports::compute::SandboxState;
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for program in ["/nonexistent/bwrap", "/bin/false"] {
        let compute = LocalCompute::new(root.path()).with_sandbox_program(program);
        let caps = compute.capabilities();
        assert_eq!(
            (caps.sandbox, caps.sandboxed),
            (SandboxState::Unavailable, false),
            "{program}"
        );
        let workspace = WorkspaceId::new();
        let session = SessionId::new();
        let refused = compute.start_session(&spec(session, workspace)).await;
        let err = refused
            .err()
            .unwrap_or_else(|| panic!("{program}: a session started unsandboxed"));
        assert_eq!(err.kind(), onmemos_core::ErrorKind::Unavailable, "{err}");
        assert!(
            err.message().contains("sandbox=off"),
            "the error says how to choose: {err}"
        );
        assert_eq!(marked(session), Vec::<i32>::new(), "nothing ran");
    }
    let off = LocalCompute::unsandboxed(root.path());
    assert_eq!(off.capabilities().sandbox, SandboxState::Off);
    let session = started(&off, WorkspaceId::new()).await;
    off.stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
}

/// A process that scrubs the session's marker from its environment and detaches with
/// `setsid` is still the session's: its cgroup holds it, so a stop kills it, and so does a
/// new compute over the same root (the server restarted).
#[tokio::test]
async fn detached_processes_die_with_their_session_even_after_a_restart() {
    use onmemos_core::ports::compute::LimitEnforcement;
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::unsandboxed(root.path());
    assert!(
        matches!(
            compute.capabilities().limits,
            LimitEnforcement::CgroupV1 | LimitEnforcement::CgroupV2
        ),
        "this test needs cgroups (the server runs as root with /sys/fs/cgroup writable): {:?}",
        compute.capabilities().limits
    );
    let escape = "env -u ONMEMOS_SESSION setsid sh -c 'sleep 600 </dev/null >/dev/null 2>&1 & echo $!' </dev/null";
    for restart in [false, true] {
        let session = started(&compute, WorkspaceId::new()).await;
        let (out, err, code) = run(&compute, session, escape, Duration::from_secs(10)).await;
        assert_eq!(code, Some(0), "{err}");
        let pid: i32 = out
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{out:?}: {e}"));
        assert!(!dead(pid), "the detached sleep runs");
        assert!(!marked(session).contains(&pid), "it carries no marker");
        if restart {
            let again = LocalCompute::unsandboxed(root.path());
            let running = again
                .running_sessions()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                running.contains(&session),
                "found after the restart: {running:?}"
            );
            again
                .stop_session(session)
                .await
                .unwrap_or_else(|e| panic!("stop: {e}"));
            compute
                .stop_session(session)
                .await
                .unwrap_or_else(|e| panic!("stop: {e}"));
        } else {
            compute
                .stop_session(session)
                .await
                .unwrap_or_else(|e| panic!("stop: {e}"));
        }
        assert!(
            dead(pid),
            "restart={restart}: the detached process outlived its session"
        );
    }
}

#[tokio::test]
async fn a_session_cannot_start_more_processes_than_its_cap() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let compute = LocalCompute::unsandboxed(root.path()).with_max_processes(16);
    let session = started(&compute, WorkspaceId::new()).await;
    let (_, err, _) = run(
        &compute,
        session,
        "for i in $(seq 40); do sleep 30 </dev/null >/dev/null 2>&1 & done; echo started",
        Duration::from_secs(20),
    )
    .await;
    let alive = marked(session).len();
    assert!(
        (1..=16).contains(&alive),
        "{alive} processes alive under a cap of 16 (40 asked for)"
    );
    assert!(
        err.to_lowercase().contains("fork"),
        "the shell was told: {err}"
    );
    compute
        .stop_session(session)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
}

/// The `ComputeProvider` suite on `LocalCompute` without the sandbox.
mod conformance_unsandboxed {
    use std::sync::Arc;

    use onmemos_backends::compute::LocalCompute;
    use onmemos_core::ports::ComputeProvider;

    fn root() -> std::path::PathBuf {
        tempfile::tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"))
            .keep()
    }

    onmemos_core::compute_conformance!(
        || async { Some(Arc::new(LocalCompute::unsandboxed(root())) as Arc<dyn ComputeProvider>) },
        restart = || async {
            let root = root();
            let first = Arc::new(LocalCompute::unsandboxed(&root)) as Arc<dyn ComputeProvider>;
            let again = Arc::new(LocalCompute::unsandboxed(&root)) as Arc<dyn ComputeProvider>;
            Some((first, again))
        }
    );
}

/// The `ComputeProvider` suite on `LocalCompute` in its bubblewrap sandbox (where bubblewrap
/// runs: `scripts/test.sh` installs it, and CI has it).
mod conformance_sandboxed {
    use std::sync::Arc;

    use onmemos_backends::compute::LocalCompute;
    use onmemos_core::ports::ComputeProvider;

    /// A fresh root, or `None` (said) where bubblewrap cannot run outside CI.
    fn root() -> Option<std::path::PathBuf> {
        if !super::which_bwrap() {
            assert!(
                std::env::var_os("CI").is_none(),
                "bubblewrap must run in CI: the sandboxed suite cannot be skipped there"
            );
            eprintln!("SKIPPED: bubblewrap is not usable here; the sandboxed suite did not run");
            return None;
        }
        Some(
            tempfile::tempdir()
                .unwrap_or_else(|e| panic!("tempdir: {e}"))
                .keep(),
        )
    }

    onmemos_core::compute_conformance!(
        || async {
            root().map(|root| Arc::new(LocalCompute::new(root)) as Arc<dyn ComputeProvider>)
        },
        restart = || async {
            let root = root()?;
            let first = Arc::new(LocalCompute::new(&root)) as Arc<dyn ComputeProvider>;
            let again = Arc::new(LocalCompute::new(&root)) as Arc<dyn ComputeProvider>;
            Some((first, again))
        }
    );
}
