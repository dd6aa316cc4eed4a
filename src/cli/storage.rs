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
        /// Start an interrupted download over instead of continuing it.
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
                let stored = storage
                    .upload_file(ws, &path, &file, bar.as_ref().map(|(_, p)| p.clone()))
                    .await;
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
