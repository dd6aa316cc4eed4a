//! File-system primitives for a directory tree written by untrusted code.
//!
//! Local sessions write straight into their workspace's directory, so anything in it may be a
//! symbolic link, a FIFO, a socket, a device node or a directory swapped for a link while the
//! server looks at it. Every primitive here therefore works relative to directory descriptors:
//!
//! - paths are resolved from the store's root descriptor, refusing any symbolic link on the
//!   way (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` where
//!   the kernel has it, else one `openat(O_NOFOLLOW | O_DIRECTORY)` per component);
//! - only regular files are read, and they are opened `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`
//!   after an `lstat` says they are regular, then checked again with `fstat` on the open
//!   descriptor, so a FIFO or device put in their place can neither block nor be read;
//! - files are replaced by renaming a new file over the name (never written through it), so a
//!   link at the name is replaced, not followed;
//! - walks (listing, usage, deletion) never follow links, read each directory whole and sort
//!   it, hold a bounded number of descriptors however deep the tree is, and climb back up
//!   through `..` only after checking that it is the directory they came from (device and
//!   inode), as `fts` does.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// The flags of every directory opened here.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Directories a walk keeps open at once; shallower ones are closed and reopened through `..`
/// when the walk climbs back to them.
const OPEN_DIRS: usize = 32;

/// How paths are resolved: `openat2` or one component at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolver {
    /// One `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (Linux
    /// 5.6 and later).
    Openat2,
    /// `openat(O_NOFOLLOW | O_DIRECTORY)` on each component.
    PerComponent,
}

impl Resolver {
    /// `openat2` when this kernel has it.
    pub(crate) fn detect() -> Self {
        static DETECTED: OnceLock<Resolver> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            match rustix::fs::openat2(
                rustix::fs::CWD,
                ".",
                DIR_FLAGS,
                Mode::empty(),
                ResolveFlags::BENEATH,
            ) {
                Err(Errno::NOSYS | Errno::PERM) => Resolver::PerComponent,
                _ => Resolver::Openat2,
            }
        })
    }
}

/// Splits an object path into its components, refusing any that could climb out or confuse a
/// file system (empty, `.`, `..`, or holding a NUL).
pub(crate) fn components(path: &str) -> Result<Vec<&str>, &'static str> {
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        match *part {
            "" => return Err("it has an empty segment"),
            "." | ".." => return Err("it has a `.` or `..` segment"),
            p if p.contains('\0') => return Err("it contains a NUL byte"),
            _ => {}
        }
    }
    Ok(parts)
}

/// Opens the directory `dirs` (components, see [`components`]) beneath `root`, never through a
/// link; with `create`, missing directories are made (mode 0755). Errors: `ENOENT` missing,
/// `ENOTDIR`/`ELOOP` something other than a directory on the way.
pub(crate) fn open_dir(
    root: BorrowedFd<'_>,
    dirs: &[&str],
    create: bool,
    resolver: Resolver,
) -> Result<OwnedFd, Errno> {
    if dirs.is_empty() {
        return rustix::fs::openat(root, ".", DIR_FLAGS, Mode::empty());
    }
    if resolver == Resolver::Openat2 && !create {
        let joined = dirs.join("/");
        return match rustix::fs::openat2(
            root,
            joined.as_str(),
            DIR_FLAGS,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            // A link on the way: what `O_NOFOLLOW` says for one.
            Err(Errno::XDEV) => Err(Errno::LOOP),
            other => other,
        };
    }
    let mut at = rustix::fs::openat(root, ".", DIR_FLAGS, Mode::empty())?;
    for dir in dirs {
        if create {
            match rustix::fs::mkdirat(&at, *dir, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
        at = rustix::fs::openat(&at, *dir, DIR_FLAGS, Mode::empty())?;
    }
    Ok(at)
}

/// The `lstat` of `name` in `dir`.
pub(crate) fn lstat(dir: BorrowedFd<'_>, name: &str) -> Result<Stat, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
}

/// Whether `stat` is of a regular file.
pub(crate) fn is_regular(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
}

/// Opens the regular file `name` in `dir` for reading; anything else (a link, a FIFO, a
/// device, a directory) is `ENOENT`, and opening never blocks.
pub(crate) fn open_regular(dir: BorrowedFd<'_>, name: &str) -> Result<(OwnedFd, Stat), Errno> {
    if !is_regular(&lstat(dir, name)?) {
        return Err(Errno::NOENT);
    }
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Err(Errno::LOOP) => return Err(Errno::NOENT),
        other => other?,
    };
    // Swapped for something else between the two calls: not served either.
    let stat = rustix::fs::fstat(&fd)?;
    if !is_regular(&stat) {
        return Err(Errno::NOENT);
    }
    Ok((fd, stat))
}

/// One entry of a walk.
#[derive(Debug)]
pub(crate) enum Entry<'a> {
    /// A regular file, with its `lstat`.
    File {
        /// Its path from the walk's start.
        path: &'a [u8],
        /// The directory holding it.
        dir: BorrowedFd<'a>,
        /// Its name in `dir`.
        name: &'a [u8],
        /// Its status.
        stat: &'a Stat,
    },
    /// Anything that is neither a regular file nor a directory: a link, FIFO, socket, device.
    Other {
        /// Its path from the walk's start.
        path: &'a [u8],
        /// The directory holding it.
        dir: BorrowedFd<'a>,
        /// Its name in `dir`.
        name: &'a [u8],
    },
    /// A directory, once everything in it was visited (or skipped).
    DirDone {
        /// Its path from the walk's start, ending in `/`.
        path: &'a [u8],
        /// The directory holding it.
        dir: BorrowedFd<'a>,
        /// Its name in `dir`.
        name: &'a [u8],
    },
}

/// What the visitor says of a directory before the walk enters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Descend {
    /// Visit what it holds.
    Yes,
    /// Skip it (and it gets no [`Entry::DirDone`]).
    No,
}

/// Whether the walk goes on after an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Visit the next entry.
    Continue,
    /// End the walk now.
    Stop,
}

/// A directory being walked: its sorted entries and where the walk is in them.
struct Frame {
    /// Open while it is one of the [`OPEN_DIRS`] deepest on the walk's path.
    fd: Option<OwnedFd>,
    /// Device and inode, to recognise it when climbing back through `..`.
    id: (u64, u64),
    /// Its path from the walk's start, ending in `/` (empty for the start).
    path: Vec<u8>,
    /// Its name in its parent (empty for the start).
    name: Vec<u8>,
    entries: Vec<(Vec<u8>, bool)>,
    next: usize,
}

/// The entries of `dir`, each with whether it looks like a directory, in the order their paths
/// sort as strings (a directory sorts as its name followed by `/`).
fn sorted_entries(dir: BorrowedFd<'_>) -> Result<Vec<(Vec<u8>, bool)>, Errno> {
    let mut entries = Vec::new();
    let mut read = Dir::read_from(dir)?;
    while let Some(entry) = read.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => {
                rustix::fs::statat(dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
            }
            _ => false,
        };
        entries.push((name.to_vec(), is_dir));
    }
    entries.sort_by_cached_key(|(name, dir)| {
        let mut key = name.clone();
        if *dir {
            key.push(b'/');
        }
        key
    });
    Ok(entries)
}

fn identity(stat: &Stat) -> (u64, u64) {
    (stat.st_dev, stat.st_ino)
}

/// Walks the tree under `start` (an open directory) depth first, in path order, never
/// following a link. `descend` is asked about each directory (by its path, ending in `/`)
/// before it is entered; `visit` gets every file, every other entry and every directory left.
/// Entries that vanish or change kind while the walk runs are skipped; a directory that is not
/// where it was when the walk climbs back is an error (`ESTALE`), so nothing outside the tree
/// is ever visited.
pub(crate) fn walk(
    start: OwnedFd,
    mut descend: impl FnMut(&[u8]) -> Descend,
    mut visit: impl FnMut(Entry<'_>) -> Result<Flow, Errno>,
) -> Result<(), Errno> {
    let stat = rustix::fs::fstat(&start)?;
    let entries = sorted_entries(start.as_fd())?;
    let mut stack = vec![Frame {
        fd: Some(start),
        id: identity(&stat),
        path: Vec::new(),
        name: Vec::new(),
        entries,
        next: 0,
    }];
    loop {
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        if top.next == top.entries.len() {
            let Some(done) = stack.pop() else {
                return Ok(());
            };
            let Some(parent) = stack.last_mut() else {
                return Ok(());
            };
            // The deepest frame is always open; the parent is reopened through `..` when it
            // was closed, and only if it is still the directory the walk came from.
            let child = done.fd.as_ref().ok_or(Errno::BADF)?;
            if parent.fd.is_none() {
                let up = rustix::fs::openat(child, "..", DIR_FLAGS, Mode::empty())?;
                if identity(&rustix::fs::fstat(&up)?) != parent.id {
                    return Err(Errno::STALE);
                }
                parent.fd = Some(up);
            }
            let dir = parent.fd.as_ref().ok_or(Errno::BADF)?.as_fd();
            let entry = Entry::DirDone {
                path: &done.path,
                dir,
                name: &done.name,
            };
            if visit(entry)? == Flow::Stop {
                return Ok(());
            }
            continue;
        }
        let name = top.entries[top.next].0.clone();
        top.next += 1;
        let dir = top.fd.as_ref().ok_or(Errno::BADF)?.as_fd();
        let mut path = top.path.clone();
        path.extend_from_slice(&name);
        let c_name = OsString::from_vec(name.clone());
        let Ok(stat) = rustix::fs::statat(dir, c_name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
        else {
            continue; // gone meanwhile
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        let flow = match kind {
            FileType::RegularFile => visit(Entry::File {
                path: &path,
                dir,
                name: &name,
                stat: &stat,
            })?,
            FileType::Directory => {
                path.push(b'/');
                if descend(&path) == Descend::No {
                    continue;
                }
                let child =
                    match rustix::fs::openat(dir, c_name.as_os_str(), DIR_FLAGS, Mode::empty()) {
                        Ok(fd) => fd,
                        // Replaced by a link or a file since it was read: not descended.
                        Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => continue,
                        Err(e) => return Err(e),
                    };
                let child_stat = rustix::fs::fstat(&child)?;
                let entries = sorted_entries(child.as_fd())?;
                stack.push(Frame {
                    fd: Some(child),
                    id: identity(&child_stat),
                    path,
                    name,
                    entries,
                    next: 0,
                });
                // Keep only the deepest directories open.
                if stack.len() > OPEN_DIRS {
                    let far = stack.len() - OPEN_DIRS - 1;
                    stack[far].fd = None;
                }
                Flow::Continue
            }
            _ => visit(Entry::Other {
                path: &path,
                dir,
                name: &name,
            })?,
        };
        if flow == Flow::Stop {
            return Ok(());
        }
    }
}

/// A byte name as the path argument of a call.
pub(crate) fn os(name: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(name)
}
