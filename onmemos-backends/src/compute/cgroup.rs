//! Resource limits and whole-tree kills for local sessions through cgroups: v2 where the
//! server's own cgroup delegates the memory, cpu and pids controllers, else the v1 memory,
//! cpu and pids hierarchies.
//!
//! Each compute gets a group `onmemos-<tag>` under the server's own cgroup (so sessions stay
//! inside whatever limits the server itself runs under), and each session a group named by
//! its id in it. A session's first process joins its group before it runs anything else
//! (see [`Cgroups::join_prefix`]), so everything it ever starts — double-forked, `setsid`,
//! with its environment scrubbed — is in the group, counted against its limits, and killed
//! with it, by this server or after a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The period CPU quotas are expressed in, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Which cgroup interface is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// The unified hierarchy.
    V2,
    /// Separate memory, cpu and pids hierarchies.
    V1,
}

/// The limits of one session's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Memory, in bytes.
    pub memory_bytes: u64,
    /// CPU, in thousandths of a CPU.
    pub cpu_millis: u32,
    /// Processes and threads.
    pub processes: u32,
}

/// The session groups of one compute.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    version: Version,
    /// The compute's group in each hierarchy: one for v2; memory, cpu, pids for v1.
    roots: Vec<PathBuf>,
}

/// Where each hierarchy is mounted and which controllers it has, from `/proc/self/mountinfo`.
fn mounts() -> Vec<(PathBuf, String, Vec<String>)> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?.to_owned();
            let options: Vec<String> = right.nth(1)?.split(',').map(str::to_owned).collect();
            Some((PathBuf::from(point), fstype, options))
        })
        .collect()
}

/// The server's own cgroup path in the hierarchy with `controller` (v1), or the unified one.
fn own_path(controller: Option<&str>) -> Option<String> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        matches.then(|| path.to_owned())
    })
}

fn under(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

impl Cgroups {
    /// The groups of the compute tagged `tag`, when this host lets the server make them (it
    /// must be able to create a group, set each limit and remove it again).
    pub(crate) fn detect(tag: &str) -> Option<Self> {
        let name = format!("onmemos-{tag}");
        let mounts = mounts();
        let v2 = mounts
            .iter()
            .find(|(_, fstype, _)| fstype == "cgroup2")
            .and_then(|(point, _, _)| {
                let own = under(point, &own_path(None)?);
                let available = std::fs::read_to_string(own.join("cgroup.subtree_control")).ok()?;
                ["memory", "cpu", "pids"]
                    .iter()
                    .all(|c| available.split_whitespace().any(|a| a == *c))
                    .then(|| own.join(&name))
            });
        let candidate = match v2 {
            Some(root) => Self {
                version: Version::V2,
                roots: vec![root],
            },
            None => {
                let root_of = |controller: &str| {
                    let (point, _, _) = mounts.iter().find(|(_, fstype, options)| {
                        fstype == "cgroup" && options.iter().any(|o| o == controller)
                    })?;
                    Some(under(point, &own_path(Some(controller))?).join(&name))
                };
                Self {
                    version: Version::V1,
                    roots: vec![root_of("memory")?, root_of("cpu")?, root_of("pids")?],
                }
            }
        };
        candidate.works().then_some(candidate)
    }

    /// Whether a group can be made, limited and removed here.
    fn works(&self) -> bool {
        let probe = format!("probe-{}", std::process::id());
        let limits = Limits {
            memory_bytes: 64 << 20,
            cpu_millis: 1000,
            processes: 16,
        };
        let made = self.create(&probe, limits);
        let removed = self.remove(&probe);
        match (&made, &removed) {
            (Ok(()), Ok(())) => true,
            _ => {
                tracing::debug!(made = ?made.err(), removed = ?removed.err(), "cgroups cannot be used for sessions here");
                false
            }
        }
    }

    /// `cgroup-v2` or `cgroup-v1`.
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    fn dirs(&self, session: &str) -> Vec<PathBuf> {
        self.roots.iter().map(|root| root.join(session)).collect()
    }

    /// Makes the group of `session` with `limits`.
    pub(crate) fn create(&self, session: &str, limits: Limits) -> std::io::Result<()> {
        for root in &self.roots {
            std::fs::create_dir_all(root)?;
        }
        let quota = u64::from(limits.cpu_millis) * CPU_PERIOD_US / 1000;
        match self.version {
            Version::V2 => {
                let root = &self.roots[0];
                // Controllers pass down one level at a time.
                write(&root.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
                let dir = root.join(session);
                std::fs::create_dir_all(&dir)?;
                write(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
                write(&dir.join("memory.swap.max"), "0").or_else(ignore_missing)?;
                write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                write(&dir.join("pids.max"), &limits.processes.to_string())?;
            }
            Version::V1 => {
                let dirs = self.dirs(session);
                for dir in &dirs {
                    std::fs::create_dir_all(dir)?;
                }
                write(
                    &dirs[0].join("memory.limit_in_bytes"),
                    &limits.memory_bytes.to_string(),
                )?;
                write(
                    &dirs[1].join("cpu.cfs_period_us"),
                    &CPU_PERIOD_US.to_string(),
                )?;
                write(&dirs[1].join("cpu.cfs_quota_us"), &quota.to_string())?;
                write(&dirs[2].join("pids.max"), &limits.processes.to_string())?;
            }
        }
        Ok(())
    }

    /// The arguments that run a command inside the group of `session`: a shell that writes
    /// its own pid into each `cgroup.procs` before it `exec`s the command, so the command and
    /// all it starts are in the group from their first instruction.
    pub(crate) fn join_prefix(&self, session: &str) -> Vec<String> {
        let mut argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@""#
                .to_owned(),
            "onmemos-cgroup".to_owned(),
        ];
        argv.extend(
            self.dirs(session)
                .into_iter()
                .map(|dir| dir.join("cgroup.procs").display().to_string()),
        );
        argv.push("--".to_owned());
        argv
    }

    /// The processes in the group of `session`.
    pub(crate) fn pids(&self, session: &str) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs(session)
            .iter()
            .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|procs| {
                procs
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The sessions whose groups still hold a process.
    pub(crate) fn sessions(&self) -> Vec<String> {
        let Some(root) = self.roots.last() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(root) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !self.pids(name).is_empty())
            .collect()
    }

    /// Kills every process in the group of `session` (none can fork meanwhile), waits until
    /// it is empty and removes it. A group that does not exist is already done.
    pub(crate) async fn kill(&self, session: &str) -> std::io::Result<()> {
        let dirs = self.dirs(session);
        if !dirs.iter().any(|d| d.exists()) {
            return Ok(());
        }
        // No new process from here on; on v2 the kernel kills the whole group at once.
        let pids_dir = match self.version {
            Version::V2 => &dirs[0],
            Version::V1 => &dirs[2],
        };
        let _ = write(&pids_dir.join("pids.max"), "0");
        if self.version == Version::V2 {
            let _ = write(&dirs[0].join("cgroup.kill"), "1");
        }
        for _ in 0..250 {
            let left = self.pids(session);
            if left.is_empty() {
                // Processes that are still exiting are no longer listed but keep the group
                // busy for a moment: try again until they are gone.
                match self.remove(session) {
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {}
                    done => return done,
                }
            }
            for pid in left {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    // Gone meanwhile is what we want.
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(std::io::Error::other(format!(
            "processes {:?} survived SIGKILL, or the group stayed busy",
            self.pids(session)
        )))
    }

    /// Removes the (empty) group of `session`.
    fn remove(&self, session: &str) -> std::io::Result<()> {
        for dir in self.dirs(session) {
            match std::fs::remove_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}
