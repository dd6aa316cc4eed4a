//! [`LocalStorage`]: workspace files on the local file system, in a tree that local sessions
//! write into directly and that is therefore hostile input.
//!
//! Every path is resolved from the root's directory descriptor without following a link,
//! only regular files are served or counted as objects, files are replaced by renaming a new
//! file over the name, and listing, usage and deletion walk the tree without following links
//! (see [`tree`]). Error messages name the object path the caller gave, never a path of the
//! server's file system.

mod tree;

use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use onmemos_core::api::ErrorCode;
use onmemos_core::ports::storage::{
    ByteStream, GetOptions, GetResult, ListResult, ObjectMeta, PartUpload, PresignMethod,
    PutOptions,
};
use onmemos_core::ports::{StorageCapabilities, StorageProvider};
use onmemos_core::{Error, Result};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;
use tokio::io::AsyncWriteExt;

use tree::{Descend, Entry, Flow, Resolver};

/// Where new files are written before they are renamed into place, and where uploads in parts
/// are assembled: a directory of the root that no workspace prefix reaches.
const STAGING: &str = ".onmemos-staging";
/// Files in the staging area older than this when the store opens were left by a process
/// that died mid-write.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// Bytes read from a file at a time when streaming it.
const FILE_CHUNK: usize = 1024 * 1024;
/// The part size of uploads in parts when the caller's size does not ask for more.
const PART_SIZE: u64 = 8 * 1024 * 1024;

/// Workspace files on the local file system, under one root directory.
#[derive(Clone)]
pub struct LocalStorage {
    inner: Arc<Inner>,
}

struct Inner {
    root: OwnedFd,
    /// Only for [`StorageProvider::local_dir`]: never put in an error.
    root_path: PathBuf,
    /// `STAGING/tmp`: new files before their rename.
    temp: OwnedFd,
    /// `STAGING/uploads`: one file per upload in parts.
    uploads: OwnedFd,
    resolver: Resolver,
}

impl std::fmt::Debug for LocalStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStorage")
            .field("root", &self.inner.root_path)
            .field("resolver", &self.inner.resolver)
            .finish()
    }
}

impl LocalStorage {
    /// The store under `dir` (created if missing). Files a crashed process left half-written
    /// in the staging area are removed.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, Resolver::detect())
    }

    pub(crate) fn open_with(dir: &Path, resolver: Resolver) -> Result<Self> {
        let config = |what: &str, e: &dyn std::fmt::Display| {
            Error::configuration(format!("storage directory {}: {what}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| config("cannot create it", &e))?;
        let root_path = dir
            .canonicalize()
            .map_err(|e| config("cannot open it", &e))?;
        let root = rustix::fs::open(
            &root_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| config("cannot open it", &e))?;
        let staging = |name: &str| {
            tree::open_dir(root.as_fd(), &[STAGING, name], true, resolver)
                .map_err(|e| config("cannot open its staging area", &e))
        };
        let (temp, uploads) = (staging("tmp")?, staging("uploads")?);
        sweep_stale(temp.as_fd());
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                root_path,
                temp,
                uploads,
                resolver,
            }),
        })
    }
}

/// Removes files older than [`STALE_TEMP`] from `dir`.
fn sweep_stale(dir: BorrowedFd<'_>) {
    let now = std::time::SystemTime::now();
    let Ok(start) = rustix::fs::openat(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
    else {
        return;
    };
    let _ = tree::walk(
        start,
        |_| Descend::No,
        |entry| {
            if let Entry::File {
                dir, name, stat, ..
            } = entry
            {
                let modified = std::time::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or(0));
                if now
                    .duration_since(modified)
                    .is_ok_and(|age| age > STALE_TEMP)
                {
                    let _ = rustix::fs::unlinkat(dir, tree::os(name), AtFlags::empty());
                }
            }
            Ok(Flow::Continue)
        },
    );
}

/// An object path split into its directories and its name.
struct Target<'a> {
    dirs: Vec<&'a str>,
    name: &'a str,
}

impl<'a> Target<'a> {
    fn parse(path: &'a str) -> Result<Self> {
        let mut parts = tree::components(path).map_err(|why| {
            Error::invalid("path", format!("invalid object path {path:?}: {why}"))
        })?;
        let name = parts.pop().unwrap_or(path);
        Ok(Self { dirs: parts, name })
    }
}

/// A listing prefix: the directory it lies in and the partial name after it.
struct Prefix {
    /// Up to and including the last `/`.
    base: String,
    dirs: Vec<String>,
}

impl Prefix {
    fn parse(prefix: &str) -> Result<Self> {
        let base = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        let dirs = match base.strip_suffix('/') {
            None => Vec::new(),
            Some(dirs) => tree::components(dirs)
                .map_err(|why| {
                    Error::invalid("prefix", format!("invalid prefix {prefix:?}: {why}"))
                })?
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        Ok(Self {
            base: base.to_owned(),
            dirs,
        })
    }
}

/// The core error for a failed file-system call on `path`, which names only the object path.
fn fs_error(errno: Errno, what: &str, path: &str) -> Error {
    match errno {
        Errno::NOENT => Error::not_found(format!("no object at {path:?}")),
        Errno::NAMETOOLONG => Error::invalid(
            "path",
            format!("{path:?} is longer than the file system allows"),
        ),
        Errno::NOSPC | Errno::DQUOT => {
            Error::unavailable(format!("cannot {what} {path:?}: the store is out of space"))
        }
        e => Error::unavailable(format!("cannot {what} {path:?}: {e}")),
    }
}

/// A directory on the way to `path` that is a file or a link.
fn not_a_directory(path: &str) -> Error {
    Error::conflict(format!(
        "cannot store {path:?}: a part of its path is not a directory"
    ))
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("a file-system task did not finish: {e}")))?
}

fn meta_of(path: &str, stat: &Stat) -> ObjectMeta {
    let nanos = i64::try_from(stat.st_mtime_nsec).unwrap_or(0);
    let last_modified =
        DateTime::<Utc>::from_timestamp(stat.st_mtime, u32::try_from(nanos).unwrap_or(0))
            .unwrap_or_default();
    ObjectMeta {
        path: path.to_owned(),
        size: u64::try_from(stat.st_size).unwrap_or(0),
        last_modified,
        // Quoted, as S3 and the other stores give theirs (and HTTP sends them).
        etag: Some(format!(
            "\"{:x}-{:x}-{:x}\"",
            stat.st_ino,
            stat.st_mtime
                .wrapping_mul(1_000_000_000)
                .wrapping_add(nanos),
            stat.st_size
        )),
    }
}

impl Inner {
    /// The directory holding `target`, never through a link; `create` makes missing ones.
    fn parent(&self, target: &Target<'_>, create: bool) -> std::result::Result<OwnedFd, Errno> {
        tree::open_dir(self.root.as_fd(), &target.dirs, create, self.resolver)
    }

    /// The regular file at `path` and its status.
    fn open_object(&self, path: &str) -> Result<(OwnedFd, Stat)> {
        let target = Target::parse(path)?;
        let missing = |e: Errno| match e {
            Errno::NOTDIR | Errno::LOOP => Errno::NOENT,
            e => e,
        };
        let dir = self
            .parent(&target, false)
            .map_err(|e| fs_error(missing(e), "read", path))?;
        tree::open_regular(dir.as_fd(), target.name).map_err(|e| fs_error(missing(e), "read", path))
    }

    /// A new file in the staging area, and its name there.
    fn temp_file(&self, path: &str) -> Result<(std::fs::File, String)> {
        let name = uuid::Uuid::now_v7().simple().to_string();
        let fd = rustix::fs::openat(
            &self.temp,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| fs_error(e, "store", path))?;
        Ok((std::fs::File::from(fd), name))
    }

    fn remove_temp(&self, name: &str) {
        let _ = rustix::fs::unlinkat(&self.temp, name, AtFlags::empty());
    }

    /// Renames `from` (in `from_dir`) to `path`, replacing what is there (the entry itself,
    /// never what a link there points at) unless `if_absent`.
    fn place(
        &self,
        from_dir: BorrowedFd<'_>,
        from: &str,
        path: &str,
        if_absent: bool,
    ) -> Result<()> {
        let target = Target::parse(path)?;
        let dir = self.parent(&target, true).map_err(|e| match e {
            Errno::NOTDIR | Errno::LOOP | Errno::EXIST => not_a_directory(path),
            e => fs_error(e, "store", path),
        })?;
        let flags = if if_absent {
            RenameFlags::NOREPLACE
        } else {
            RenameFlags::empty()
        };
        let renamed = match rustix::fs::renameat_with(from_dir, from, &dir, target.name, flags) {
            // A file system without RENAME_NOREPLACE: a hard link fails the same way.
            Err(Errno::INVAL) if if_absent => {
                rustix::fs::linkat(from_dir, from, &dir, target.name, AtFlags::empty())
                    .and_then(|()| rustix::fs::unlinkat(from_dir, from, AtFlags::empty()))
            }
            renamed => renamed,
        };
        renamed.map_err(|e| match e {
            Errno::EXIST if if_absent => Error::conflict(format!("an object exists at {path:?}")),
            Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => Error::conflict(format!(
                "cannot store {path:?}: other objects are stored under it, as a directory"
            )),
            e => fs_error(e, "store", path),
        })
    }

    /// Writes `body` to a new staged file, then renames it to `path`.
    async fn put(
        self: Arc<Self>,
        path: String,
        mut body: ByteStream,
        if_absent: bool,
    ) -> Result<ObjectMeta> {
        Target::parse(&path)?;
        let this = self.clone();
        let p = path.clone();
        let (file, temp) = blocking(move || this.temp_file(&p)).await?;
        let mut file = tokio::fs::File::from_std(file);
        let written: Result<()> = async {
            while let Some(chunk) = body.next().await {
                file.write_all(&chunk?)
                    .await
                    .map_err(|e| io_error(e, "store", &path))?;
            }
            file.flush().await.map_err(|e| io_error(e, "store", &path))
        }
        .await;
        let file = file.into_std().await;
        let this = self.clone();
        blocking(move || {
            let placed = written.and_then(|()| {
                let stat = rustix::fs::fstat(&file).map_err(|e| fs_error(e, "store", &path))?;
                this.place(this.temp.as_fd(), &temp, &path, if_absent)?;
                Ok(meta_of(&path, &stat))
            });
            if placed.is_err() {
                this.remove_temp(&temp);
            }
            placed
        })
        .await
    }

    /// The bytes of every regular file under `prefix`, whatever its name: what a session
    /// wrote is stored.
    fn measure(&self, prefix: &str) -> Result<u64> {
        let mut total = 0u64;
        self.walk_prefix(prefix, None, "measure", |_, entry| {
            if let Entry::File { stat, .. } = entry {
                total = total.saturating_add(u64::try_from(stat.st_size).unwrap_or(0));
            }
            Ok(Flow::Continue)
        })?;
        Ok(total)
    }

    /// Walks what lies under `prefix` (sorting after `after`, when given), never through a
    /// link: `visit` gets each entry whose key (its path in the store, as bytes) starts with
    /// the prefix. Nothing there is no error.
    fn walk_prefix(
        &self,
        prefix: &str,
        after: Option<&str>,
        what: &str,
        mut visit: impl FnMut(&[u8], Entry<'_>) -> std::result::Result<Flow, Errno>,
    ) -> Result<()> {
        let parsed = Prefix::parse(prefix)?;
        let dirs: Vec<&str> = parsed.dirs.iter().map(String::as_str).collect();
        let start = match tree::open_dir(self.root.as_fd(), &dirs, false, self.resolver) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(()),
            Err(e) => return Err(fs_error(e, what, prefix)),
        };
        let full = |path: &[u8]| [parsed.base.as_bytes(), path].concat();
        tree::walk(
            start,
            |dir| worth_entering(prefix.as_bytes(), after.map(str::as_bytes), &full(dir)),
            |entry| {
                let (Entry::File { path, .. }
                | Entry::Other { path, .. }
                | Entry::DirDone { path, .. }) = &entry;
                let key = full(path);
                if key.starts_with(prefix.as_bytes()) {
                    visit(&key, entry)
                } else {
                    Ok(Flow::Continue)
                }
            },
        )
        .map_err(|e| fs_error(e, what, prefix))
    }

    fn upload_name(upload: &str) -> Result<String> {
        uuid::Uuid::parse_str(upload)
            .map(|id| id.simple().to_string())
            .map_err(|_| Error::not_found(format!("no upload {upload:?}")))
    }
}

fn io_error(e: std::io::Error, what: &str, path: &str) -> Error {
    match e.raw_os_error() {
        Some(code) => fs_error(Errno::from_raw_os_error(code), what, path),
        None => Error::unavailable(format!("cannot {what} {path:?}: {e}")),
    }
}

/// `range` of an open file as a stream of chunks of up to [`FILE_CHUNK`] bytes, each read on
/// the blocking pool. A file that shrinks while it is read ends the stream with an error.
fn file_stream(file: std::fs::File, range: Range<u64>) -> ByteStream {
    let state = (Arc::new(file), range.start, range.end);
    futures_util::stream::try_unfold(state, |(file, at, end)| async move {
        if at >= end {
            return Ok(None);
        }
        let want = usize::try_from(end - at).map_or(FILE_CHUNK, |left| left.min(FILE_CHUNK));
        let reader = file.clone();
        let buf = blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0; want];
            reader
                .read_exact_at(&mut buf, at)
                .map_err(|e| Error::unavailable(format!("reading a stored object: {e}")))?;
            Ok(buf)
        })
        .await?;
        let len = buf.len() as u64;
        Ok(Some((Bytes::from(buf), (file, at + len, end))))
    })
    .boxed()
}

fn unsatisfiable(range: &Range<u64>, size: u64) -> Error {
    Error::with_code(
        ErrorCode::RangeNotSatisfiable,
        format!(
            "the range {}..{} starts at or past the end of the object ({size} bytes)",
            range.start, range.end
        ),
    )
}

/// Whether the walk of `prefix` should enter the directory whose full key (path and `/`) is
/// `key`: it holds objects under the prefix (or the prefix lies in it), it is not the staging
/// area, and its paths do not all sort at or before `after`.
fn worth_entering(prefix: &[u8], after: Option<&[u8]>, key: &[u8]) -> Descend {
    let worth = key != format!("{STAGING}/").as_bytes()
        && key.starts_with(prefix)
        && after.is_none_or(|after| after < key || after.starts_with(key));
    if worth { Descend::Yes } else { Descend::No }
}

#[async_trait]
impl StorageProvider for LocalStorage {
    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities::new("local").with_conditional_put(true)
    }

    async fn put(&self, path: &str, body: ByteStream, options: PutOptions) -> Result<ObjectMeta> {
        self.inner
            .clone()
            .put(path.to_owned(), body, options.if_absent)
            .await
    }

    async fn get(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        if let Some(range) = &options.range
            && range.start >= range.end
        {
            return Err(Error::with_code(
                ErrorCode::RangeNotSatisfiable,
                format!("the range {}..{} is empty", range.start, range.end),
            ));
        }
        let inner = self.inner.clone();
        let path = path.to_owned();
        let (file, meta) = blocking(move || {
            let (fd, stat) = inner.open_object(&path)?;
            Ok((std::fs::File::from(fd), meta_of(&path, &stat)))
        })
        .await?;
        if let Some(expected) = &options.if_match
            && meta.etag.as_ref() != Some(expected)
        {
            return Err(Error::with_code(
                ErrorCode::PreconditionFailed,
                format!("the object at {:?} changed", meta.path),
            ));
        }
        let range = match options.range {
            Some(range) if range.start >= meta.size => {
                return Err(unsatisfiable(&range, meta.size));
            }
            Some(range) => range.start..range.end.min(meta.size),
            None => 0..meta.size,
        };
        let body = file_stream(file, range.clone());
        Ok(GetResult { meta, range, body })
    }

    async fn head(&self, path: &str) -> Result<ObjectMeta> {
        let inner = self.inner.clone();
        let path = path.to_owned();
        blocking(move || {
            let (_, stat) = inner.open_object(&path)?;
            Ok(meta_of(&path, &stat))
        })
        .await
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListResult> {
        let inner = self.inner.clone();
        let (prefix, after) = (prefix.to_owned(), after.map(str::to_owned));
        blocking(move || {
            let mut objects = Vec::new();
            inner.walk_prefix(&prefix, after.as_deref(), "list", |key, entry| {
                // A name that is not UTF-8 is no object path: not listed.
                if let Entry::File { stat, .. } = entry
                    && let Ok(key) = std::str::from_utf8(key)
                    && after.as_deref().is_none_or(|a| key > a)
                {
                    objects.push(meta_of(key, stat));
                    if objects.len() > limit {
                        return Ok(Flow::Stop);
                    }
                }
                Ok(Flow::Continue)
            })?;
            let next = if objects.len() > limit {
                objects.truncate(limit);
                objects.last().map(|o| o.path.clone())
            } else {
                None
            };
            Ok(ListResult { objects, next })
        })
        .await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let inner = self.inner.clone();
        let (from, to) = (from.to_owned(), to.to_owned());
        blocking(move || {
            Target::parse(&to)?;
            let (source, _) = inner.open_object(&from)?;
            let (mut file, temp) = inner.temp_file(&to)?;
            let copied = std::io::copy(&mut std::fs::File::from(source), &mut file)
                .map_err(|e| io_error(e, "copy", &from))
                .and_then(|_| inner.place(inner.temp.as_fd(), &temp, &to, false));
            if copied.is_err() {
                inner.remove_temp(&temp);
            }
            copied
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let inner = self.inner.clone();
        let path = path.to_owned();
        blocking(move || {
            let target = Target::parse(&path)?;
            let dir = match inner.parent(&target, false) {
                Ok(dir) => dir,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(()),
                Err(e) => return Err(fs_error(e, "delete", &path)),
            };
            // The entry itself goes, whatever it is but a directory (which is no object).
            match rustix::fs::unlinkat(&dir, target.name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT | Errno::ISDIR) => Ok(()),
                Err(e) => Err(fs_error(e, "delete", &path)),
            }
        })
        .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let parsed = Prefix::parse(prefix)?;
        let inner = self.inner.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut removed = 0u64;
            inner.walk_prefix(&prefix, None, "delete", |_, entry| {
                let (dir, name, flags, object) = match entry {
                    Entry::File { dir, name, .. } => (dir, name, AtFlags::empty(), true),
                    Entry::Other { dir, name, .. } => (dir, name, AtFlags::empty(), false),
                    Entry::DirDone { dir, name, .. } => (dir, name, AtFlags::REMOVEDIR, false),
                };
                match rustix::fs::unlinkat(dir, tree::os(name), flags) {
                    Ok(()) => removed += u64::from(object),
                    // Gone meanwhile, or written into by a session meanwhile: left.
                    Err(Errno::NOENT | Errno::NOTEMPTY) => {}
                    Err(e) => return Err(e),
                }
                Ok(Flow::Continue)
            })?;
            // A prefix that is a whole directory takes the directory with it.
            let dirs: Vec<&str> = parsed.dirs.iter().map(String::as_str).collect();
            if prefix.ends_with('/')
                && let Some((name, up)) = dirs.split_last()
                && let Ok(parent) = tree::open_dir(inner.root.as_fd(), up, false, inner.resolver)
            {
                let _ = rustix::fs::unlinkat(&parent, *name, AtFlags::REMOVEDIR);
            }
            Ok(removed)
        })
        .await
    }

    async fn presign(
        &self,
        method: PresignMethod,
        path: &str,
        expires_in: Duration,
    ) -> Result<String> {
        let _ = (method, path, expires_in);
        Err(Error::with_code(
            ErrorCode::Unsupported,
            "the local store cannot presign URLs",
        ))
    }

    async fn usage_bytes(&self, prefix: &str) -> Result<u64> {
        let inner = self.inner.clone();
        let prefix = prefix.to_owned();
        blocking(move || inner.measure(&prefix)).await
    }

    async fn usage_bytes_of(&self, prefixes: &[String]) -> Result<Vec<u64>> {
        // A walk is system calls on this machine's cores: one blocking task per core, each
        // walking its share in turn, where a task per directory cost a thread switch each.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let share = prefixes.len().div_ceil(cores).max(1);
        let walks = prefixes.chunks(share).map(|part| {
            let (inner, part) = (self.inner.clone(), part.to_vec());
            blocking(move || part.iter().map(|p| inner.measure(p)).collect())
        });
        let measured: Vec<Vec<u64>> = futures_util::future::try_join_all(walks).await?;
        Ok(measured.into_iter().flatten().collect())
    }

    async fn create_upload(
        &self,
        path: &str,
        size: u64,
        content_type: Option<&str>,
    ) -> Result<PartUpload> {
        let _ = content_type;
        Target::parse(path)?;
        let id = uuid::Uuid::now_v7();
        let part_size = PartUpload::part_size_for(size, PART_SIZE);
        let inner = self.inner.clone();
        let path = path.to_owned();
        blocking(move || {
            let name = id.simple().to_string();
            let fd = rustix::fs::openat(
                &inner.uploads,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map_err(|e| fs_error(e, "start the upload of", &path))?;
            if let Err(e) = rustix::fs::ftruncate(&fd, size) {
                let _ = rustix::fs::unlinkat(&inner.uploads, name.as_str(), AtFlags::empty());
                return Err(match e {
                    Errno::FBIG | Errno::INVAL => Error::invalid(
                        "size",
                        format!("{size} bytes is larger than this store can hold in one object"),
                    ),
                    e => fs_error(e, "start the upload of", &path),
                });
            }
            Ok(PartUpload {
                id: id.to_string(),
                part_size,
            })
        })
        .await
    }

    async fn put_part(
        &self,
        path: &str,
        upload: &PartUpload,
        number: u32,
        body: Bytes,
    ) -> Result<String> {
        let name = Inner::upload_name(&upload.id)?;
        let offset = u64::from(number)
            .checked_mul(upload.part_size)
            .ok_or_else(|| Error::invalid("part", format!("part {number} is past any object")))?;
        let inner = self.inner.clone();
        let path = path.to_owned();
        blocking(move || {
            use std::os::unix::fs::FileExt;
            let missing = |e: Errno| match e {
                Errno::NOENT => Error::not_found(format!("no upload in progress for {path:?}")),
                e => fs_error(e, "write a part of", &path),
            };
            let fd = rustix::fs::openat(
                &inner.uploads,
                name.as_str(),
                OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(missing)?;
            let size = u64::try_from(rustix::fs::fstat(&fd).map_err(missing)?.st_size).unwrap_or(0);
            if offset
                .checked_add(body.len() as u64)
                .is_none_or(|end| end > size)
            {
                return Err(Error::invalid(
                    "part",
                    format!(
                        "part {number} of {} bytes ends past the upload's {size} bytes",
                        body.len()
                    ),
                ));
            }
            std::fs::File::from(fd)
                .write_all_at(&body, offset)
                .map_err(|e| io_error(e, "write a part of", &path))?;
            Ok(number.to_string())
        })
        .await
    }

    async fn complete_upload(
        &self,
        path: &str,
        upload: &PartUpload,
        parts: &[String],
    ) -> Result<ObjectMeta> {
        let _ = parts;
        let name = Inner::upload_name(&upload.id)?;
        let inner = self.inner.clone();
        let path = path.to_owned();
        blocking(move || {
            match rustix::fs::statat(&inner.uploads, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => {}
                Err(Errno::NOENT) => {
                    return Err(Error::not_found(format!(
                        "no upload in progress for {path:?}"
                    )));
                }
                Err(e) => return Err(fs_error(e, "complete the upload of", &path)),
            }
            inner.place(inner.uploads.as_fd(), &name, &path, false)?;
            let (_, stat) = inner.open_object(&path)?;
            Ok(meta_of(&path, &stat))
        })
        .await
    }

    async fn abort_upload(&self, path: &str, upload: &PartUpload) -> Result<()> {
        let name = Inner::upload_name(&upload.id)?;
        let inner = self.inner.clone();
        let path = path.to_owned();
        blocking(move || {
            match rustix::fs::unlinkat(&inner.uploads, name.as_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(fs_error(e, "abort the upload of", &path)),
            }
        })
        .await
    }

    fn local_dir(&self, prefix: &str) -> Option<PathBuf> {
        let dirs = tree::components(prefix.trim_end_matches('/')).ok()?;
        Some(
            dirs.iter()
                .fold(self.inner.root_path.clone(), |p, d| p.join(d)),
        )
    }
}

#[cfg(test)]
mod tests;
