//! `onmemos storage cp|ls|rm|usage`: workspace files, with progress bars.
//!
//! A remote file is written `WORKSPACE:PATH`, WORKSPACE being a workspace's id or name (as
//! `scp` does; write a local path containing `:` as `./a:b`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use onmemos::client::api::ObjectListParams;
use onmemos::client::id::WorkspaceId;
use onmemos::client::{Client, Progress};

use super::Output;
use super::output::when;
use super::resources::resolve_workspace;

#[derive(Debug, Subcommand)]
pub(crate) enum StorageCommand {
    /// Copy a file to or from a workspace: `cp data.csv lab:data/data.csv`,
    /// `cp lab:data/data.csv ./data.csv`.
    Cp {
        /// The source: a local file or `WORKSPACE:PATH`.
        from: String,
        /// The destination: a local file or directory, or `WORKSPACE:PATH` (a path ending in
        /// `/` keeps the source's file name).
        to: String,
        /// Start an interrupted transfer over instead of continuing it.
        #[arg(long)]
        no_resume: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List a workspace's files: `ls lab` or `ls lab:data/`.
    Ls {
        /// `WORKSPACE` or `WORKSPACE:PREFIX`.
        location: String,
    },
    /// Delete a file: `rm lab:data/old.csv`.
    Rm {
        /// `WORKSPACE:PATH`.
        location: String,
    },
    /// What a workspace stores, its quota and its storage bill.
    Usage {
        /// The workspace (id or name).
        workspace: String,
    },
}

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Local(PathBuf),
    Remote { workspace: String, path: String },
}

/// `WORKSPACE:PATH` is remote when the part before `:` contains no `/`; anything else is a
/// local path.
fn location(arg: &str) -> Location {
    match arg.split_once(':') {
        Some((ws, path)) if !ws.is_empty() && !ws.contains('/') => Location::Remote {
            workspace: ws.to_owned(),
            path: path.trim_start_matches('/').to_owned(),
        },
        _ => Location::Local(PathBuf::from(arg)),
    }
}

fn bar(quiet: bool, what: &str) -> Option<(ProgressBar, Progress)> {
    if quiet {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    let handle = bar.clone();
    let progress: Progress = Arc::new(move |done, total| {
        if let Some(total) = total {
            handle.set_length(total);
        }
        handle.set_position(done);
    });
    Some((bar, progress))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn size(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

pub(crate) async fn run(
    client: &Client,
    command: StorageCommand,
    out: &Output,
) -> anyhow::Result<()> {
    let storage = client.storage();
    match command {
        StorageCommand::Cp {
            from,
            to,
            no_resume,
            quiet,
        } => match (location(&from), location(&to)) {
            (Location::Local(file), Location::Remote { workspace, path }) => {
                let ws = resolve_workspace(client, &workspace).await?;
                let path = if path.is_empty() || path.ends_with('/') {
                    let name = file
                        .file_name()
                        .with_context(|| format!("{} names no file", file.display()))?;
                    format!("{path}{}", name.to_string_lossy())
                } else {
                    path
                };
                let bar = bar(quiet || out.json, &path);
                let progress = bar.as_ref().map(|(_, p)| p.clone());
                let len = std::fs::metadata(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
                    .len();
                let stored = if len >= RESUMABLE_FROM {
                    upload_in_parts(client, ws, &path, &file, !no_resume, progress).await
                } else {
                    storage.upload_file(ws, &path, &file, progress).await
                };
                if let Some((bar, _)) = &bar {
                    bar.finish_and_clear();
                }
                let stored = stored?;
                out.print(
                    &stored,
                    &["uploaded", "size", "etag"],
                    [vec![
                        format!("{workspace}:{}", stored.path),
                        size(stored.size),
                        stored.etag.clone().unwrap_or_default(),
                    ]],
                )
            }
            (Location::Remote { workspace, path }, Location::Local(dest)) => {
                let ws = resolve_workspace(client, &workspace).await?;
                anyhow::ensure!(!path.is_empty(), "{from:?} names no file");
                let dest = if dest.is_dir() {
                    dest.join(file_name(&path))
                } else {
                    dest
                };
                download(client, ws, &path, &dest, !no_resume, quiet || out.json, out).await
            }
            (Location::Remote { .. }, Location::Remote { .. }) => {
                anyhow::bail!("copy between two workspaces is not supported: download, then upload")
            }
            (Location::Local(_), Location::Local(_)) => anyhow::bail!(
                "neither side is a workspace: write one as WORKSPACE:PATH (e.g. lab:data.csv)"
            ),
        },
        StorageCommand::Ls { location: arg } => {
            let (workspace, prefix) = match location(&arg) {
                Location::Remote { workspace, path } => (workspace, path),
                Location::Local(_) => (arg.clone(), String::new()),
            };
            let ws = resolve_workspace(client, &workspace).await?;
            let mut params = ObjectListParams {
                prefix: Some(prefix).filter(|p| !p.is_empty()),
                limit: Some(1000),
                cursor: None,
            };
            let mut items = Vec::new();
            loop {
                let page = storage.list(ws, &params).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(c) => params.cursor = Some(c),
                    None => break,
                }
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|o| vec![o.path.clone(), size(o.size), when(Some(o.last_modified))])
                .collect();
            out.print(&items, &["path", "size", "modified"], rows)
        }
        StorageCommand::Rm { location: arg } => {
            let Location::Remote { workspace, path } = location(&arg) else {
                anyhow::bail!("write the file to delete as WORKSPACE:PATH (e.g. lab:old.csv)");
            };
            anyhow::ensure!(!path.is_empty(), "{arg:?} names no file");
            let ws = resolve_workspace(client, &workspace).await?;
            storage.delete(ws, &path).await?;
            out.done(&format!("deleted {workspace}:{path}"))
        }
        StorageCommand::Usage { workspace } => {
            let ws = resolve_workspace(client, &workspace).await?;
            let usage = storage.usage(ws).await?;
            let credits = super::credits::credits;
            out.print(
                &usage,
                &["stored", "quota", "charged", "owed"],
                [vec![
                    size(usage.bytes),
                    size(usage.quota_bytes),
                    credits(usage.charged_micros),
                    credits(usage.owed_micros),
                ]],
            )
        }
    }
}

/// Uploads of files at least this large go in parts and resume after an interruption.
const RESUMABLE_FROM: u64 = 16 * 1024 * 1024;

/// Uploads in progress, kept in `uploads.json` of the state directory (`ONMEMOS_STATE_DIR`,
/// else `$XDG_STATE_HOME/onmemos`, else `~/.local/state/onmemos`) so that running the same
/// `cp` again continues where it stopped.
struct UploadState {
    file: Option<PathBuf>,
}

impl UploadState {
    fn open() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = var("ONMEMOS_STATE_DIR")
            .or_else(|| var("XDG_STATE_HOME").map(|d| d.join("onmemos")))
            .or_else(|| var("HOME").map(|d| d.join(".local/state/onmemos")));
        Self {
            file: dir.map(|d| d.join("uploads.json")),
        }
    }

    /// What identifies one upload: the server, the destination, and the source file as it
    /// is now (a file changed since is uploaded afresh).
    fn key(client: &Client, ws: WorkspaceId, path: &str, file: &Path) -> anyhow::Result<String> {
        let meta = std::fs::metadata(file)?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let source = std::fs::canonicalize(file)?;
        Ok(format!(
            "{} {ws}:{path} {} {} {modified}",
            client.base_url(),
            source.display(),
            meta.len()
        ))
    }

    fn load(&self) -> std::collections::BTreeMap<String, String> {
        self.file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn get(&self, key: &str) -> Option<String> {
        self.load().remove(key)
    }

    /// Records (or with `None`, forgets) the upload of `key`; a state that cannot be written
    /// only costs the ability to resume.
    fn set(&self, key: &str, upload: Option<&str>) {
        let Some(file) = &self.file else { return };
        let mut all = self.load();
        match upload {
            Some(id) => all.insert(key.to_owned(), id.to_owned()),
            None => all.remove(key),
        };
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::write(file, serde_json::to_vec_pretty(&all).unwrap_or_default())
            });
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "cannot record the upload to resume it later");
        }
    }
}

/// Uploads `file` in parts, continuing an earlier interrupted `cp` of the same file when
/// `resume`.
async fn upload_in_parts(
    client: &Client,
    ws: WorkspaceId,
    path: &str,
    file: &Path,
    resume: bool,
    progress: Option<Progress>,
) -> onmemos::client::Result<onmemos::client::api::StoredObject> {
    let state = UploadState::open();
    let key = UploadState::key(client, ws, path, file).ok();
    let previous = key
        .as_deref()
        .filter(|_| resume)
        .and_then(|k| state.get(k))
        .and_then(|id| id.parse().ok());
    let stored = client
        .storage()
        .upload_file_resumable(
            ws,
            path,
            file,
            previous,
            |upload| {
                if let Some(key) = &key {
                    state.set(key, Some(&upload.id.to_string()));
                }
            },
            progress,
        )
        .await;
    match (&stored, &key) {
        (Ok(_), Some(key)) => state.set(key, None),
        (Err(_), Some(_)) if resume => {
            eprintln!("the upload stopped; run the same command again to continue it");
        }
        _ => {}
    }
    stored
}

async fn download(
    client: &Client,
    ws: WorkspaceId,
    path: &str,
    dest: &Path,
    resume: bool,
    quiet: bool,
    out: &Output,
) -> anyhow::Result<()> {
    let bar = bar(quiet, path);
    let got = client
        .storage()
        .download_file(ws, path, dest, resume, bar.as_ref().map(|(_, p)| p.clone()))
        .await;
    if let Some((bar, _)) = &bar {
        bar.finish_and_clear();
    }
    let object = got?;
    out.print(
        &object,
        &["downloaded", "size", "to"],
        [vec![
            object.path.clone(),
            size(object.size),
            dest.display().to_string(),
        ]],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_locations_are_written_like_scp() {
        assert_eq!(
            location("lab:data/a.csv"),
            Location::Remote {
                workspace: "lab".into(),
                path: "data/a.csv".into()
            }
        );
        assert_eq!(
            location("ws_01ab:/x"),
            Location::Remote {
                workspace: "ws_01ab".into(),
                path: "x".into()
            }
        );
        assert_eq!(location("./a:b"), Location::Local(PathBuf::from("./a:b")));
        assert_eq!(
            location("data.csv"),
            Location::Local(PathBuf::from("data.csv"))
        );
        assert_eq!(location(":x"), Location::Local(PathBuf::from(":x")));
    }
}
