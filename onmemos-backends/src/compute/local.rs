//! `LocalCompute`: each session is a shell under a real PTY on this machine, in its own
//! terminal session and process group, working in the workspace's directory (which outlives
//! sessions).
//!
//! **The sandbox fails closed.** Sessions run in bubblewrap (`bwrap`): their own PID, IPC and
//! mount namespaces, seeing the workspace as `/workspace`. Where bubblewrap is missing or
//! cannot create namespaces, sessions are refused (and the check is made again at each start,
//! so installing it needs no restart) — unless the operator chose `local://?sandbox=off`
//! ([`LocalCompute::unsandboxed`]), which is logged as a warning at start and on every session.
//! [`ComputeProvider::capabilities`] says which.
//!
//! **Limits and kills by cgroup.** Where the server can make cgroups (v2, or the v1 memory,
//! cpu and pids hierarchies), each session gets one with the template's memory and CPU and a
//! process cap; its first process joins it before anything else runs, so stopping a session
//! (or reconciling after a restart) kills everything it started, however it detached. Where no
//! cgroup can be made, memory falls back to `prlimit --as` (util-linux), which counts virtual
//! memory. Either way, stopping also kills every process carrying the session's
//! `ONMEMOS_SESSION` marker and everything in the shell's terminal session, with their
//! descendants, found in `/proc` — then checks that none is left.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ReceiverStream;
use async_trait::async_trait;
use bytes::Bytes;
use onmemos_core::id::{SessionId, WorkspaceId};
use onmemos_core::ports::compute::{
    ComputeCapabilities, ComputeProvider, ComputeStatus, ExecEvent, ExecRequest, ExecStream,
    FilesMount, LimitEnforcement, PtyConnection, PtySize, ResourceUsage, SandboxState, SessionSpec,
    WorkspaceSpec,
};
use onmemos_core::{Error, Result};
use pty_process::{OwnedWritePty, Size};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use super::cgroup::{self, Cgroups};
use super::procfs;

/// The environment variable that marks every process of a session.
const MARKER: &str = "ONMEMOS_SESSION";

/// How much terminal output a slow reader may fall behind before it loses the oldest.
const OUTPUT_BACKLOG: usize = 1024;

/// The most processes (and threads) one session may have at once, by default.
pub const DEFAULT_MAX_PROCESSES: u32 = 1024;

/// Whether sessions must run in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sandbox {
    /// Sessions run in bubblewrap or not at all.
    Required,
    /// The operator chose to run sessions without it.
    Off,
}

/// Where a program is on `PATH`, if anywhere.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("local compute: {what}: {e}"))
}

/// A running session.
struct LocalSession {
    /// The session leader (the shell, or bubblewrap around it).
    leader: i32,
    child: tokio::sync::Mutex<tokio::process::Child>,
    input: tokio::sync::Mutex<OwnedWritePty>,
    /// The terminal's output, while it is open: the reader task clears it when the terminal
    /// closes, so attachments see the end of output.
    output: Arc<Mutex<Option<broadcast::Sender<Bytes>>>>,
    workdir: PathBuf,
    /// The workspace's files on this machine, linked as `files` in the working directory.
    files: Option<PathBuf>,
    env: BTreeMap<String, String>,
    /// `ONMEMOS_SESSION=<id>@<root>`, in the environment of every process started for it.
    marker: String,
    reader: tokio::task::AbortHandle,
}

impl LocalSession {
    /// A receiver of the terminal's output; an already closed one if the terminal closed.
    fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        match &*self.output.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    fn processes(&self) -> Vec<procfs::ProcStat> {
        procfs::tree(&procfs::all(), self.leader, |pid| {
            procfs::has_marker(pid, &self.marker)
        })
    }
}

/// Sessions as process trees under a PTY on this machine: the embedded default.
pub struct LocalCompute {
    root: PathBuf,
    sandbox: Sandbox,
    /// bubblewrap, once it has been found working (looked for again at each start until then).
    bwrap: Mutex<Option<PathBuf>>,
    /// The bubblewrap to use instead of the one on `PATH`.
    bwrap_program: Option<PathBuf>,
    /// Per-session cgroups, where this host allows them.
    cgroups: Option<Cgroups>,
    max_processes: u32,
    prlimit: Option<PathBuf>,
    shell: PathBuf,
    /// The root as an absolute path: the marker's suffix, so a compute finds its own sessions'
    /// processes in `/proc` after a restart, and no other compute's.
    tag: String,
    sessions: Mutex<HashMap<SessionId, Arc<LocalSession>>>,
}

impl std::fmt::Debug for LocalCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCompute")
            .field("root", &self.root)
            .field("sandbox", &self.capabilities().sandbox)
            .field("limits", &self.capabilities().limits)
            .finish()
    }
}

impl LocalCompute {
    /// Sessions with workspace directories under `root` (created when missing), always in the
    /// bubblewrap sandbox: where it cannot run, sessions are refused.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let compute = Self::with_sandbox(root.into(), Sandbox::Required);
        if compute.bwrap().is_none() {
            tracing::error!(
                "bubblewrap (bwrap) is missing or cannot create namespaces here: local sessions are refused until it works (install it, or choose local://?sandbox=off)"
            );
        }
        compute
    }

    /// Sessions that run without the sandbox, as plain processes of the server's user: only
    /// for hosts where bubblewrap cannot run, by the operator's explicit choice. Logged as a
    /// warning now and at every session.
    pub fn unsandboxed(root: impl Into<PathBuf>) -> Self {
        tracing::warn!(
            "local compute runs sessions WITHOUT a sandbox (local://?sandbox=off): session code can read and write everything the server's user can"
        );
        Self::with_sandbox(root.into(), Sandbox::Off)
    }

    fn with_sandbox(root: PathBuf, sandbox: Sandbox) -> Self {
        let tag = std::path::absolute(&root)
            .unwrap_or_else(|_| root.clone())
            .display()
            .to_string();
        let bwrap = match sandbox {
            Sandbox::Required => find_bwrap(),
            Sandbox::Off => None,
        };
        let cgroups = Cgroups::detect(&short_hash(&tag));
        if cgroups.is_none() {
            tracing::warn!(
                "no cgroup can be made for sessions here: memory is limited by prlimit --as only, and a session's detached processes are found through /proc"
            );
        }
        Self {
            root,
            tag,
            sandbox,
            bwrap: Mutex::new(bwrap),
            bwrap_program: None,
            cgroups,
            max_processes: DEFAULT_MAX_PROCESSES,
            prlimit: which("prlimit"),
            shell: which("bash").unwrap_or_else(|| PathBuf::from("/bin/sh")),
            sessions: Mutex::default(),
        }
    }

    /// At most `processes` processes and threads per session (where cgroups enforce it;
    /// [`DEFAULT_MAX_PROCESSES`] unless set).
    pub fn with_max_processes(mut self, processes: u32) -> Self {
        self.max_processes = processes.max(1);
        self
    }

    /// Uses the bubblewrap at `program` instead of the one on `PATH` (sessions are refused
    /// while it cannot run, as always).
    pub fn with_sandbox_program(self, program: impl Into<PathBuf>) -> Self {
        let program = program.into();
        let works = (self.sandbox == Sandbox::Required && sandbox_works(&program))
            .then_some(program.clone());
        *self.bwrap.lock().unwrap_or_else(|e| e.into_inner()) = works;
        Self {
            bwrap_program: Some(program),
            ..self
        }
    }

    /// bubblewrap when the sandbox is required and works, looking for it again if it did not.
    fn bwrap(&self) -> Option<PathBuf> {
        if self.sandbox == Sandbox::Off {
            return None;
        }
        let mut found = self.bwrap.lock().unwrap_or_else(|e| e.into_inner());
        if found.is_none() {
            *found = match &self.bwrap_program {
                Some(program) => sandbox_works(program).then(|| program.clone()),
                None => find_bwrap(),
            };
        }
        found.clone()
    }

    /// The directory of a workspace: the working directory of its sessions.
    pub fn workspace_dir(&self, workspace: WorkspaceId) -> PathBuf {
        self.root.join("workspaces").join(workspace.to_string())
    }

    fn session(&self, session: SessionId) -> Result<Arc<LocalSession>> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no running session {session}")))
    }

    /// The program and arguments that run `command` for `session`, working in `workdir`: in
    /// its cgroup when there are cgroups (else under `prlimit --as` when memory is limited),
    /// inside bubblewrap when sandboxed (with the workspace's `files` directory bound at its
    /// own path, so the `files` link resolves inside too).
    fn wrap(
        &self,
        session: SessionId,
        workdir: &Path,
        files: Option<&Path>,
        memory_mib: Option<u32>,
        command: &[String],
    ) -> Result<Vec<String>> {
        let mut argv = Vec::new();
        if let Some(cgroups) = &self.cgroups {
            argv.extend(cgroups.join_prefix(&session.to_string()));
        } else if let (Some(prlimit), Some(mib)) = (&self.prlimit, memory_mib) {
            let bytes = u64::from(mib) * 1024 * 1024;
            argv.push(prlimit.display().to_string());
            argv.push(format!("--as={bytes}"));
            argv.push("--".into());
        }
        match (self.sandbox, self.bwrap()) {
            (Sandbox::Off, _) => {}
            (Sandbox::Required, None) => return Err(no_sandbox()),
            (Sandbox::Required, Some(bwrap)) => {
                let dir = workdir.display().to_string();
                argv.push(bwrap.display().to_string());
                for a in [
                    "--die-with-parent",
                    "--unshare-pid",
                    "--unshare-ipc",
                    "--unshare-uts",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "--tmpfs",
                    "/tmp",
                    "--ro-bind",
                    "/usr",
                    "/usr",
                    "--ro-bind-try",
                    "/bin",
                    "/bin",
                    "--ro-bind-try",
                    "/lib",
                    "/lib",
                    "--ro-bind-try",
                    "/lib64",
                    "/lib64",
                    "--ro-bind-try",
                    "/etc",
                    "/etc",
                    "--bind",
                    &dir,
                    "/workspace",
                ] {
                    argv.push(a.to_owned());
                }
                if let Some(files) = files {
                    let files = files.display().to_string();
                    argv.extend(["--bind".into(), files.clone(), files]);
                }
                argv.extend(["--chdir", "/workspace", "--"].map(str::to_owned));
            }
        }
        argv.extend(command.iter().cloned());
        Ok(argv)
    }

    /// Kills everything of `session` this compute can find: its cgroup, then the processes
    /// carrying its marker (and their trees).
    async fn kill_everything(&self, session: SessionId) -> Result<()> {
        if let Some(cgroups) = &self.cgroups {
            cgroups
                .kill(&session.to_string())
                .await
                .map_err(|e| io_error("kill the session's cgroup", e))?;
        }
        let marker = format!("{MARKER}={}", self.marker_value(session));
        let find = || procfs::tree(&procfs::all(), 0, |pid| procfs::has_marker(pid, &marker));
        kill_all(find, || async {}).await
    }

    /// The marker value of `session`'s processes.
    fn marker_value(&self, session: SessionId) -> String {
        format!("{session}@{}", self.tag)
    }

    /// Kills every process of `s` and waits until none is left.
    async fn kill_tree(&self, s: &LocalSession) -> Result<()> {
        let killed = kill_all(
            || s.processes(),
            || async {
                // Reap the leader so it does not linger as a zombie in the tree.
                let _ = s.child.lock().await.try_wait();
            },
        )
        .await;
        if killed.is_ok() {
            // Reap the leader (killed above, so this does not block).
            let _ = s.child.lock().await.wait().await;
        }
        killed
    }
}

/// Makes `<workdir>/files` a link to the workspace's files at `files` (created if missing),
/// replacing an older link; a real file or directory of that name is left alone.
async fn link_files(workdir: &Path, files: &Path) -> Result<()> {
    tokio::fs::create_dir_all(files)
        .await
        .map_err(|e| io_error("create the workspace's files directory", e))?;
    let link = workdir.join("files");
    match tokio::fs::symlink_metadata(&link).await {
        Ok(meta) if meta.file_type().is_symlink() => {
            if tokio::fs::read_link(&link).await.ok().as_deref() == Some(files) {
                return Ok(());
            }
            tokio::fs::remove_file(&link)
                .await
                .map_err(|e| io_error("replace the files link", e))?;
        }
        Ok(_) => {
            tracing::warn!(path = %link.display(), "the workspace has its own `files`; its stored files are not linked");
            return Ok(());
        }
        Err(_) => {}
    }
    tokio::fs::symlink(files, &link)
        .await
        .map_err(|e| io_error("link the workspace's files", e))
}

/// Sends SIGKILL to every process `find` returns until it returns none (calling `between`
/// after each round); an error names the survivors.
async fn kill_all<F: std::future::Future<Output = ()>>(
    find: impl Fn() -> Vec<procfs::ProcStat>,
    between: impl Fn() -> F,
) -> Result<()> {
    for _ in 0..50 {
        let left = find();
        if left.is_empty() {
            return Ok(());
        }
        for p in &left {
            if let Some(pid) = rustix::process::Pid::from_raw(p.pid) {
                // Gone meanwhile is fine: that is what we want.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        between().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<i32> = find().iter().map(|p| p.pid).collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "local compute: processes {left:?} survived SIGKILL"
        )))
    }
}

#[async_trait]
impl ComputeProvider for LocalCompute {
    fn capabilities(&self) -> ComputeCapabilities {
        let sandbox = match (self.sandbox, self.bwrap().is_some()) {
            (Sandbox::Off, _) => SandboxState::Off,
            (Sandbox::Required, true) => SandboxState::Enforced,
            (Sandbox::Required, false) => SandboxState::Unavailable,
        };
        let limits = match (&self.cgroups, &self.prlimit) {
            (Some(c), _) if c.version() == cgroup::Version::V2 => LimitEnforcement::CgroupV2,
            (Some(_), _) => LimitEnforcement::CgroupV1,
            (None, Some(_)) => LimitEnforcement::AddressSpace,
            (None, None) => LimitEnforcement::None,
        };
        ComputeCapabilities::new("local")
            .with_storage_mounts(true)
            .with_sandbox(sandbox)
            .with_limits(limits)
            .with_node_local(true)
    }

    async fn provision_workspace(&self, spec: &WorkspaceSpec) -> Result<()> {
        tokio::fs::create_dir_all(self.workspace_dir(spec.workspace))
            .await
            .map_err(|e| io_error("create the workspace directory", e))
    }

    async fn teardown_workspace(&self, workspace: WorkspaceId) -> Result<()> {
        let busy = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|s| s.workdir == self.workspace_dir(workspace));
        if busy {
            return Err(Error::conflict(format!(
                "workspace {workspace} has a running session"
            )));
        }
        match tokio::fs::remove_dir_all(self.workspace_dir(workspace)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error("remove the workspace directory", e))
            }
            _ => Ok(()),
        }
    }

    async fn start_session(&self, spec: &SessionSpec) -> Result<()> {
        if self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&spec.session)
        {
            return Err(Error::conflict(format!(
                "session {} is already running",
                spec.session
            )));
        }
        let workdir = self.workspace_dir(spec.workspace);
        tokio::fs::create_dir_all(&workdir)
            .await
            .map_err(|e| io_error("create the workspace directory", e))?;
        // Only files on this machine can be shown here: a bucket is the business of a
        // compute with a CSI driver.
        let files_dir = match &spec.files {
            Some(FilesMount::Dir(dir)) => Some(dir.clone()),
            _ => None,
        };
        if let Some(files) = &files_dir {
            link_files(&workdir, files).await?;
        }
        let shell = self.shell.display().to_string();
        let argv = self.wrap(
            spec.session,
            &workdir,
            files_dir.as_deref(),
            Some(spec.resources.memory_mib),
            &[shell, "-i".into()],
        )?;
        if self.sandbox == Sandbox::Off {
            tracing::warn!(session = %spec.session, "starting a session WITHOUT a sandbox (local://?sandbox=off)");
        }
        if let Some(cgroups) = &self.cgroups {
            let limits = cgroup::Limits {
                memory_bytes: u64::from(spec.resources.memory_mib) << 20,
                cpu_millis: spec.resources.cpu_millis,
                processes: self.max_processes,
            };
            cgroups
                .create(&spec.session.to_string(), limits)
                .map_err(|e| io_error("make the session's cgroup", e))?;
        }
        let marker = format!("{MARKER}={}", self.marker_value(spec.session));
        let (pty, pts) = pty_process::open().map_err(|e| io_error("open a PTY", e))?;
        pty.resize(Size::new(24, 80))
            .map_err(|e| io_error("size the PTY", e))?;
        let child = pty_process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(base_env())
            .envs(&spec.env)
            .env(MARKER, self.marker_value(spec.session))
            .env("TERM", "xterm-256color")
            .current_dir(&workdir)
            .spawn(pts)
            .map_err(|e| io_error("start the session shell", e))?;
        let leader = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| io_error("start the session shell", "it exited at once"))?;
        let (mut read, write) = pty.into_split();
        let (sender, _) = broadcast::channel(OUTPUT_BACKLOG);
        let output = Arc::new(Mutex::new(Some(sender.clone())));
        let open = output.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            // EIO when the last process holding the terminal exits: the end of output.
            while let Ok(n @ 1..) = read.read(&mut buf).await {
                // No subscriber is fine: output nobody is attached to is dropped.
                let _ = sender.send(Bytes::copy_from_slice(&buf[..n]));
            }
            // Dropping the last sender ends every attachment's output.
            open.lock().unwrap_or_else(|e| e.into_inner()).take();
        })
        .abort_handle();
        let session = LocalSession {
            leader,
            child: tokio::sync::Mutex::new(child),
            input: tokio::sync::Mutex::new(write),
            output,
            workdir,
            files: files_dir,
            env: spec.env.clone(),
            marker,
            reader,
        };
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.session, Arc::new(session));
        Ok(())
    }

    async fn stop_session(&self, session: SessionId) -> Result<()> {
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session);
        let Some(s) = removed else {
            // Not started by this process: what a previous run of the server left behind.
            return self.kill_everything(session).await;
        };
        let killed = self.kill_tree(&s).await;
        s.reader.abort();
        killed.and(self.kill_everything(session).await)
    }

    async fn exec(&self, session: SessionId, request: ExecRequest) -> Result<ExecStream> {
        let s = self.session(session)?;
        if request.command.is_empty() {
            return Err(Error::invalid("command", "the command is empty"));
        }
        let argv = self.wrap(
            session,
            &s.workdir,
            s.files.as_deref(),
            None,
            &request.command,
        )?;
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(base_env())
            .envs(&s.env)
            .envs(&request.env)
            .env(MARKER, self.marker_value(session))
            .current_dir(&s.workdir)
            .process_group(0)
            .kill_on_drop(true)
            .stdin(if request.stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            Error::invalid(
                "command",
                format!("cannot run {:?}: {e}", request.command[0]),
            )
        })?;
        if let (Some(mut stdin), Some(bytes)) = (child.stdin.take(), request.stdin) {
            tokio::spawn(async move {
                // A command that exits without reading its input is not an error.
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        tokio::spawn(async move {
            let run = async {
                let (mut out_buf, mut err_buf) = (vec![0u8; 8192], vec![0u8; 8192]);
                let (mut out_open, mut err_open) = (stdout.is_some(), stderr.is_some());
                while out_open || err_open {
                    tokio::select! {
                        n = read_some(&mut stdout, &mut out_buf), if out_open => match n {
                            Some(n) => { let _ = tx.send(Ok(ExecEvent::Stdout(Bytes::copy_from_slice(&out_buf[..n])))).await; }
                            None => out_open = false,
                        },
                        n = read_some(&mut stderr, &mut err_buf), if err_open => match n {
                            Some(n) => { let _ = tx.send(Ok(ExecEvent::Stderr(Bytes::copy_from_slice(&err_buf[..n])))).await; }
                            None => err_open = false,
                        },
                    }
                }
                child.wait().await
            };
            let gone = tx.clone();
            // The command leads its own process group: ending it ends all it started there.
            let kill_group = || {
                if let Some(group) = group {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
            };
            let exit = tokio::select! {
                ran = tokio::time::timeout(request.timeout, run) => match ran {
                    Ok(Ok(status)) => status.code(),
                    // Timed out, or could not be waited for.
                    _ => {
                        kill_group();
                        None
                    }
                },
                // Nobody reads the output any more (the request went away): the command is
                // killed rather than left running.
                () = gone.closed() => {
                    kill_group();
                    return;
                }
            };
            let _ = tx.send(Ok(ExecEvent::Exit(exit))).await;
        });
        Ok(Box::pin(ReceiverStream(rx)))
    }

    async fn attach_pty(
        &self,
        session: SessionId,
        size: PtySize,
    ) -> Result<Box<dyn PtyConnection>> {
        let s = self.session(session)?;
        let connection = LocalPty {
            output: tokio::sync::Mutex::new(s.subscribe()),
            session: s,
        };
        let connection = Box::new(connection);
        connection.resize(size).await?;
        Ok(connection)
    }

    async fn status(&self, session: SessionId) -> Result<ComputeStatus> {
        let Ok(s) = self.session(session) else {
            return Ok(ComputeStatus::Gone);
        };
        let exited = s
            .child
            .lock()
            .await
            .try_wait()
            .map_err(|e| io_error("check the session shell", e))?;
        Ok(match exited {
            Some(status) => ComputeStatus::Exited(status.code()),
            None => ComputeStatus::Running,
        })
    }

    async fn usage(&self, session: SessionId) -> Result<ResourceUsage> {
        let s = self.session(session)?;
        let procs = s.processes();
        let ticks = rustix::param::clock_ticks_per_second().max(1);
        let page = rustix::param::page_size() as u64;
        Ok(ResourceUsage {
            cpu_time_ms: procs.iter().map(|p| p.cpu_ticks).sum::<u64>() * 1000 / ticks,
            memory_bytes: procs.iter().map(|p| p.rss_pages).sum::<u64>() * page,
            processes: u32::try_from(procs.len()).unwrap_or(u32::MAX),
        })
    }

    async fn running_sessions(&self) -> Result<Vec<SessionId>> {
        let mut found: std::collections::BTreeSet<SessionId> = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        // And those a previous run of the server started, still alive.
        if let Some(cgroups) = &self.cgroups {
            found.extend(
                cgroups
                    .sessions()
                    .iter()
                    .filter_map(|s| s.parse::<SessionId>().ok()),
            );
        }
        let suffix = format!("@{}", self.tag);
        for p in procfs::all() {
            if let Some(value) = procfs::env_var(p.pid, MARKER)
                && let Some(id) = value.strip_suffix(&suffix)
                && let Ok(id) = id.parse()
            {
                found.insert(id);
            }
        }
        Ok(found.into_iter().collect())
    }
}

/// The session sandbox's error while bubblewrap cannot run.
fn no_sandbox() -> Error {
    Error::unavailable(
        "local compute cannot start sessions: bubblewrap (bwrap) is missing or cannot create namespaces on this host; install it (apt-get install bubblewrap), or choose compute_url = \"local://?sandbox=off\" to run sessions without a sandbox",
    )
}

/// bubblewrap, when it is on the `PATH` and can create namespaces here.
fn find_bwrap() -> Option<PathBuf> {
    which("bwrap").filter(|bwrap| sandbox_works(bwrap))
}

/// A short, stable name for a compute root (its cgroup's name).
fn short_hash(text: &str) -> String {
    // FNV-1a: stable across runs and builds, unlike the std hasher.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Whether bubblewrap can create the namespaces sessions run in here (it cannot in some
/// containers).
fn sandbox_works(bwrap: &Path) -> bool {
    let ok = std::process::Command::new(bwrap)
        .args([
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--ro-bind",
            "/",
            "/",
            "--",
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        tracing::warn!(
            bwrap = %bwrap.display(),
            "bubblewrap is installed but cannot create namespaces here"
        );
    }
    ok
}

/// The environment sessions start from: enough to find programs and a home.
fn base_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), "/tmp".into()),
        ("LANG".into(), "C.UTF-8".into()),
    ]
}

/// Reads what is there from an optional pipe; `None` at its end.
async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> Option<usize> {
    match pipe.as_mut()?.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// One attachment to a session's terminal: input goes to the PTY, output comes from the
/// session's broadcast (every attachment sees all output from when it attached).
struct LocalPty {
    session: Arc<LocalSession>,
    output: tokio::sync::Mutex<broadcast::Receiver<Bytes>>,
}

impl std::fmt::Debug for LocalPty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPty")
            .field("leader", &self.session.leader)
            .finish()
    }
}

#[async_trait]
impl PtyConnection for LocalPty {
    async fn write(&self, bytes: &[u8]) -> Result<()> {
        let mut input = self.session.input.lock().await;
        input
            .write_all(bytes)
            .await
            .map_err(|e| io_error("write to the terminal", e))
    }

    async fn read(&self) -> Result<Option<Bytes>> {
        let mut output = self.output.lock().await;
        loop {
            match output.recv().await {
                Ok(bytes) => return Ok(Some(bytes)),
                // Fell behind: the oldest output is gone; carry on with what follows.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }

    async fn resize(&self, size: PtySize) -> Result<()> {
        self.session
            .input
            .lock()
            .await
            .resize(Size::new(size.rows, size.cols))
            .map_err(|e| io_error("resize the terminal", e))
    }
}
