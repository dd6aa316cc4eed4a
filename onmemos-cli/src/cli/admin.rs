//! `onmemos admin …`: administration straight on the database, without a running server.

use std::path::PathBuf;

use crate::config::{FlagOverrides, ServeConfig};
use clap::Subcommand;
use onmemos::core::api::{CreateUser, ListParams};
use onmemos::core::model::Role;

use crate::cli::Output;
use crate::cli::output::when;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Create a user and print their first API key (shown only this once).
    CreateUser {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// A display name.
        #[arg(long)]
        name: Option<String>,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Also write ONMEMOS_URL and ONMEMOS_API_KEY to this file (mode 0600).
        #[arg(long, value_name = "PATH")]
        write_env: Option<PathBuf>,
        /// The server URL to write with --write-env.
        #[arg(long, default_value = onmemos::client::DEFAULT_URL)]
        server_url: String,
    },
    /// List users.
    ListUsers,
    /// Rebuild every balance from the ledger's transfers and report any drift (exits 1 on drift).
    Reconcile,
    /// Release timed-out holds and expire due grants now.
    ExpireCredits,
}

pub(crate) async fn run(
    command: AdminCommand,
    config: Option<PathBuf>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    out: &Output,
) -> anyhow::Result<()> {
    let flags = FlagOverrides {
        database_url,
        data_dir,
        ..FlagOverrides::default()
    };
    let config = ServeConfig::load(config.as_deref(), &flags)?;
    let engine = config.open_engine().await?;
    match command {
        AdminCommand::CreateUser {
            email,
            name,
            admin,
            write_env,
            server_url,
        } => {
            let role = if admin { Role::Admin } else { Role::Member };
            let created = engine
                .users()
                .bootstrap(CreateUser {
                    email,
                    name,
                    role: Some(role),
                })
                .await?;
            if let Some(path) = &write_env {
                let text = format!(
                    "ONMEMOS_URL={server_url}\nONMEMOS_API_KEY={}\n",
                    created.api_key.secret
                );
                crate::cli::serve::write_private(path, &text)?;
            }
            let u = &created.user;
            out.print(
                &created,
                &["user", "email", "role", "api key (shown once)"],
                [vec![
                    u.id.to_string(),
                    u.email.clone(),
                    u.role.as_str().into(),
                    created.api_key.secret.clone(),
                ]],
            )
        }
        AdminCommand::Reconcile => {
            let r = engine.credits().reconcile().await?;
            let rows = r.drift.iter().map(|d| {
                vec![
                    d.account.to_string(),
                    format!("{:?}", d.stored),
                    format!("{:?}", d.rebuilt),
                ]
            });
            out.print(&r, &["account", "stored", "rebuilt from transfers"], rows)?;
            if !out.json {
                println!(
                    "{} accounts, {} transfers, net posted {}, net pending {}: {}",
                    r.accounts,
                    r.transfers,
                    r.net_posted,
                    r.net_pending,
                    if r.is_consistent() {
                        "consistent"
                    } else {
                        "DRIFT"
                    }
                );
            }
            anyhow::ensure!(r.is_consistent(), "the ledger does not reconcile");
            Ok(())
        }
        AdminCommand::ExpireCredits => {
            let made = engine.credits().expire_due().await?;
            out.done(&format!("{} expiry transfers made", made.len()))
        }
        AdminCommand::ListUsers => {
            let admin = onmemos::core::Principal::operator();
            let mut users = Vec::new();
            let mut params = ListParams::first(200);
            loop {
                let page = engine.users().list(&admin, &params).await?;
                users.extend(page.items);
                match page.next_cursor {
                    Some(c) => params.cursor = Some(c),
                    None => break,
                }
            }
            let rows = users.iter().map(|u| {
                vec![
                    u.id.to_string(),
                    u.email.clone(),
                    u.role.as_str().into(),
                    when(Some(u.created_at)),
                ]
            });
            out.print(&users, &["id", "email", "role", "created"], rows)
        }
    }
}
