//! What `/proc` says about processes: parent, session, CPU time, resident memory, and whether a
//! process carries a session's marker in its environment.

use std::collections::{BTreeSet, HashMap};

/// One process, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    pub(crate) sid: i32,
    /// User plus system CPU time, in clock ticks.
    pub(crate) cpu_ticks: u64,
    /// Resident pages.
    pub(crate) rss_pages: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// hold spaces or parentheses itself, so fields are counted after its last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_once('(')?.0.trim().parse().ok()?;
    // After the name: state(3) ppid(4) pgrp(5) session(6) … utime(14) stime(15) … rss(24).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        pid,
        ppid: field(4)?.parse().ok()?,
        sid: field(6)?.parse().ok()?,
        cpu_ticks: field(14)?.parse::<u64>().ok()? + field(15)?.parse::<u64>().ok()?,
        rss_pages: field(24)?.parse().ok()?,
    })
}

/// Every live process this user can see now. Zombies (exited, waiting for their parent to
/// reap them: they hold no resources and cannot be killed) and processes that end while being
/// read are skipped.
pub(crate) fn all() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let pid: i32 = name.to_str()?.parse().ok()?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = text.rsplit_once(')')?.1.split_whitespace().next()?;
        if state == "Z" || state == "X" {
            return None;
        }
        parse_stat(&text)
    })
    .collect()
}

/// Whether process `pid` has `marker` (`KEY=value`) in its environment.
pub(crate) fn has_marker(pid: i32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        .unwrap_or(false)
}

/// The value of the environment variable `key` of process `pid`, if it has one.
pub(crate) fn env_var(pid: i32, key: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0).find_map(|var| {
        let value = var.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        String::from_utf8(value.to_vec()).ok()
    })
}

/// The processes of a session: every process `marked` as its own, everything in the terminal
/// session of its `leader` (while the leader is still one of its own: a pid can be reused once
/// the leader is gone), and every descendant of those.
pub(crate) fn tree(procs: &[ProcStat], leader: i32, marked: impl Fn(i32) -> bool) -> Vec<ProcStat> {
    let leader_ours = procs.iter().any(|p| p.pid == leader) && marked(leader);
    let mut members: BTreeSet<i32> = procs
        .iter()
        .filter(|p| marked(p.pid) || (leader_ours && p.sid == leader))
        .map(|p| p.pid)
        .collect();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut queue: Vec<i32> = members.iter().copied().collect();
    while let Some(pid) = queue.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if members.insert(*child) {
                queue.push(*child);
            }
        }
    }
    procs
        .iter()
        .filter(|p| members.contains(&p.pid))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let line = "4242 (tmux: server (1)) S 1 4242 4242 0 -1 4194560 1 0 0 0 17 5 0 0 20 0 \
                    1 0 100 1000000 321 18446744073709551615";
        let p = parse_stat(line);
        assert_eq!(
            p,
            Some(ProcStat {
                pid: 4242,
                ppid: 1,
                sid: 4242,
                cpu_ticks: 22,
                rss_pages: 321
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn tree_follows_sessions_and_descendants() {
        let p = |pid, ppid, sid| ProcStat {
            pid,
            ppid,
            sid,
            cpu_ticks: 0,
            rss_pages: 0,
        };
        // 10 leads session 10 (marked); 11 is its child, unmarked (its environment was
        // cleared); 12 left the session (setsid) but is 11's child; 20 is a command run in the
        // session (marked, its own session); 21 its child; 30 is unrelated.
        let procs = [
            p(10, 1, 10),
            p(11, 10, 10),
            p(12, 11, 12),
            p(20, 1, 20),
            p(21, 20, 20),
            p(30, 1, 30),
        ];
        let pids = |leader, marked: &[i32]| {
            let mut got: Vec<i32> = tree(&procs, leader, |pid| marked.contains(&pid))
                .iter()
                .map(|p| p.pid)
                .collect();
            got.sort_unstable();
            got
        };
        assert_eq!(pids(10, &[10, 20]), [10, 11, 12, 20, 21]);
        // A leader that is no longer ours (its pid reused): its terminal session is not.
        assert_eq!(pids(10, &[20]), [20, 21]);
    }
}
