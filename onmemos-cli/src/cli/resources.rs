//! User commands over the HTTP client: workspaces, templates, keys.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Subcommand;
use onmemos::client::Client;
use onmemos::core::api::{
    CreateApiKey, CreateTemplate, CreateWorkspace, ListParams, TemplateListParams, UpdateWorkspace,
};
use onmemos::core::id::{ApiKeyId, WorkspaceId};
use onmemos::core::model::{Resources, Scope, TemplateCategory, Workspace};

use crate::cli::Output;
use crate::cli::output::when;

#[derive(Debug, Subcommand)]
pub(crate) enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        /// A DNS-label name (lowercase letters, digits, '-').
        name: String,
        /// A description.
        #[arg(long)]
        description: Option<String>,
        /// An environment variable for its sessions (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
        env: Vec<(String, String)>,
    },
    /// List your workspaces.
    List,
    /// Show a workspace (by id or name).
    Get { workspace: String },
    /// Change a workspace (by id or name).
    Update {
        workspace: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new description ("" clears it).
        #[arg(long)]
        description: Option<String>,
        /// Replace the environment variables (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
        env: Option<Vec<(String, String)>>,
    },
    /// Delete a workspace (by id or name).
    Delete { workspace: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TemplateCommand {
    /// List templates (built-in and yours).
    List {
        /// Only this category (python, nodejs, data-science, ml, custom).
        #[arg(long, value_parser = parse_category)]
        category: Option<TemplateCategory>,
        /// Only templates with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// The most used first.
        #[arg(long)]
        popular: bool,
    },
    /// Show a template (by id or name).
    Get { template: String },
    /// Create a custom template.
    Create {
        /// A DNS-label name.
        name: String,
        /// The container image.
        #[arg(long)]
        image: String,
        /// CPU in millicores.
        #[arg(long, default_value_t = 1000)]
        cpu_millis: u32,
        /// Memory in MiB.
        #[arg(long, default_value_t = 2048)]
        memory_mib: u32,
        /// GPUs.
        #[arg(long, default_value_t = 0)]
        gpu: u32,
        /// Disk in GiB.
        #[arg(long, default_value_t = 10)]
        disk_gib: u32,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// An environment variable (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// A description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete one of your templates (by id or name).
    Delete { template: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create an API key and print its secret (shown only this once).
    Create {
        /// A name to recognise it by.
        name: String,
        /// A scope (repeatable; default: all of the calling key's scopes).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Expire after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List your API keys.
    List,
    /// Revoke an API key.
    Revoke { id: ApiKeyId },
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn parse_category(s: &str) -> Result<TemplateCategory, String> {
    TemplateCategory::parse(s)
        .ok_or_else(|| format!("unknown category {s:?} (python, nodejs, data-science, ml, custom)"))
}

pub(crate) async fn whoami(client: &Client, out: &Output) -> anyhow::Result<()> {
    let me = client.users().me().await?;
    out.print(
        &me,
        &["id", "email", "role"],
        [vec![
            me.id.to_string(),
            me.email.clone(),
            me.role.as_str().into(),
        ]],
    )
}

async fn all_workspaces(client: &Client) -> anyhow::Result<Vec<Workspace>> {
    let mut items = Vec::new();
    let mut params = ListParams::first(200);
    loop {
        let page = client.workspaces().list(&params).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => return Ok(items),
        }
    }
}

pub(crate) async fn resolve_workspace(
    client: &Client,
    id_or_name: &str,
) -> anyhow::Result<WorkspaceId> {
    if id_or_name.starts_with("ws_") {
        return Ok(id_or_name.parse()?);
    }
    all_workspaces(client)
        .await?
        .into_iter()
        .find(|w| w.name == id_or_name)
        .map(|w| w.id)
        .with_context(|| format!("no workspace named {id_or_name:?}"))
}

fn workspace_rows(items: &[Workspace]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.name.clone(),
                w.env.len().to_string(),
                when(Some(w.created_at)),
            ]
        })
        .collect()
}

const WORKSPACE_HEADERS: &[&str] = &["id", "name", "env vars", "created"];

pub(crate) async fn workspace(
    client: &Client,
    command: WorkspaceCommand,
    out: &Output,
) -> anyhow::Result<()> {
    match command {
        WorkspaceCommand::Create {
            name,
            description,
            env,
        } => {
            let w = client
                .workspaces()
                .create(&CreateWorkspace {
                    name,
                    description,
                    env: env.into_iter().collect(),
                })
                .await?;
            out.print(
                &w,
                WORKSPACE_HEADERS,
                workspace_rows(std::slice::from_ref(&w)),
            )
        }
        WorkspaceCommand::List => {
            let items = all_workspaces(client).await?;
            out.print(&items, WORKSPACE_HEADERS, workspace_rows(&items))
        }
        WorkspaceCommand::Get { workspace } => {
            let id = resolve_workspace(client, &workspace).await?;
            let w = client.workspaces().get(id).await?;
            out.print(
                &w,
                WORKSPACE_HEADERS,
                workspace_rows(std::slice::from_ref(&w)),
            )
        }
        WorkspaceCommand::Update {
            workspace,
            name,
            description,
            env,
        } => {
            let id = resolve_workspace(client, &workspace).await?;
            let request = UpdateWorkspace {
                name,
                description,
                env: env.map(|e| e.into_iter().collect::<BTreeMap<_, _>>()),
            };
            let w = client.workspaces().update(id, &request).await?;
            out.print(
                &w,
                WORKSPACE_HEADERS,
                workspace_rows(std::slice::from_ref(&w)),
            )
        }
        WorkspaceCommand::Delete { workspace } => {
            let id = resolve_workspace(client, &workspace).await?;
            client.workspaces().delete(id).await?;
            out.done(&format!("deleted workspace {id}"))
        }
    }
}

pub(crate) async fn template(
    client: &Client,
    command: TemplateCommand,
    out: &Output,
) -> anyhow::Result<()> {
    let rows = |items: &[onmemos::core::model::Template]| -> Vec<Vec<String>> {
        items
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.category.as_str().into(),
                    format!("{:.1}", f64::from(t.resources.cpu_millis) / 1000.0),
                    format!("{}", t.resources.memory_mib),
                    t.resources.gpu.to_string(),
                    t.tags.join(","),
                    if t.builtin { "built-in" } else { "custom" }.into(),
                    t.usage_count.to_string(),
                ]
            })
            .collect()
    };
    let headers = &[
        "name", "category", "vCPU", "MiB", "GPU", "tags", "kind", "used",
    ];
    match command {
        TemplateCommand::List {
            category,
            tag,
            popular,
        } => {
            let mut params = TemplateListParams {
                category,
                tag,
                sort: popular.then_some(onmemos::client::api::TemplateSort::Popular),
                limit: Some(200),
                cursor: None,
            };
            let mut items = Vec::new();
            loop {
                let page = client.templates().list(&params).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(c) => params.cursor = Some(c),
                    None => break,
                }
            }
            out.print(&items, headers, rows(&items))
        }
        TemplateCommand::Get { template } => {
            let t = client.templates().get(&template).await?;
            out.print(&t, headers, rows(std::slice::from_ref(&t)))
        }
        TemplateCommand::Create {
            name,
            image,
            cpu_millis,
            memory_mib,
            gpu,
            disk_gib,
            tags,
            env,
            description,
        } => {
            let t = client
                .templates()
                .create(&CreateTemplate {
                    name,
                    description,
                    category: None,
                    image,
                    resources: Resources {
                        cpu_millis,
                        memory_mib,
                        gpu,
                        disk_gib,
                    },
                    env: env.into_iter().collect(),
                    default_limits: None,
                    tags,
                    expected_start_ms: None,
                })
                .await?;
            out.print(&t, headers, rows(std::slice::from_ref(&t)))
        }
        TemplateCommand::Delete { template } => {
            client.templates().delete(&template).await?;
            out.done(&format!("deleted template {template}"))
        }
    }
}

pub(crate) async fn keys(client: &Client, command: KeyCommand, out: &Output) -> anyhow::Result<()> {
    let headers = &[
        "id",
        "name",
        "prefix",
        "scopes",
        "expires",
        "last used",
        "revoked",
    ];
    let row = |k: &onmemos::core::model::ApiKey| {
        vec![
            k.id.to_string(),
            k.name.clone(),
            k.prefix.clone(),
            k.scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            when(k.expires_at),
            when(k.last_used_at),
            when(k.revoked_at),
        ]
    };
    match command {
        KeyCommand::Create {
            name,
            scopes,
            expires_in_days,
        } => {
            let scopes = if scopes.is_empty() {
                None
            } else {
                Some(
                    scopes
                        .iter()
                        .map(|s| s.parse::<Scope>().map_err(anyhow::Error::msg))
                        .collect::<anyhow::Result<Vec<_>>>()?,
                )
            };
            let expires_at =
                expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
            let created = client
                .api_keys()
                .create(&CreateApiKey {
                    name,
                    scopes,
                    expires_at,
                })
                .await?;
            let mut r = row(&created.key);
            r.push(created.secret.clone());
            let mut h = headers.to_vec();
            h.push("secret (shown once)");
            out.print(&created, &h, [r])
        }
        KeyCommand::List => {
            let mut params = ListParams::first(200);
            let mut items = Vec::new();
            loop {
                let page = client.api_keys().list(&params).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(c) => params.cursor = Some(c),
                    None => break,
                }
            }
            out.print(&items, headers, items.iter().map(row))
        }
        KeyCommand::Revoke { id } => {
            let k = client.api_keys().revoke(id).await?;
            out.print(&k, headers, [row(&k)])
        }
    }
}
