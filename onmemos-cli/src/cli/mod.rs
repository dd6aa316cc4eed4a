//! Command-line interface.

mod admin;
mod credits;
mod optimize;
mod output;
mod resources;
mod serve;
mod sessions;
mod shell;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) use output::Output;

#[derive(Debug, Parser)]
#[command(
    name = "onmemos",
    version,
    about = "Metered cloud workspaces: server, admin and client"
)]
struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The server URL for client commands [env: ONMEMOS_URL]
    #[arg(long, global = true)]
    url: Option<String>,
    /// The API key for client commands [env: ONMEMOS_API_KEY]
    #[arg(long, global = true, hide_env_values = true)]
    api_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded defaults: SQLite and files under ./onmemos-data).
    Serve(serve::ServeArgs),
    /// Administration on the database directly (no server needed).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
        /// Server configuration file (TOML).
        #[arg(long, global = true, env = "ONMEMOS_CONFIG")]
        config: Option<PathBuf>,
        /// Database URL (default: SQLite in the data directory).
        #[arg(long, global = true, alias = "database")]
        database_url: Option<String>,
        /// Data directory.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Show the user the API key belongs to.
    Whoami,
    /// Manage workspaces.
    #[command(alias = "workspaces", alias = "ws")]
    Workspace {
        #[command(subcommand)]
        command: resources::WorkspaceCommand,
    },
    /// Browse and manage templates.
    #[command(alias = "templates")]
    Template {
        #[command(subcommand)]
        command: resources::TemplateCommand,
    },
    /// Manage your API keys.
    #[command(alias = "key")]
    Keys {
        #[command(subcommand)]
        command: resources::KeyCommand,
    },
    /// Start, list, stop and exec into sessions.
    #[command(alias = "sessions")]
    Session {
        #[command(subcommand)]
        command: sessions::SessionCommand,
    },
    /// Open a session's terminal here (built-ins: /help, /status, /credits, /clear).
    Shell {
        /// The session.
        session: onmemos::client::id::SessionId,
    },
    /// Copy, list and delete workspace files (`WORKSPACE:PATH`).
    #[command(alias = "files")]
    Storage {
        #[command(subcommand)]
        command: storage::StorageCommand,
    },
    /// What a session would cost, with cheaper alternatives; several templates are compared.
    Estimate(sessions::EstimateArgs),
    /// Cost recommendations for a cluster snapshot (consolidation, spot, rightsizing, office hours).
    Optimize(optimize::OptimizeArgs),
    /// Your credits; purchases and grants (admin).
    Credits {
        #[command(subcommand)]
        command: Option<credits::CreditCommand>,
    },
}

/// A command that ran remotely ended with this exit code, which `onmemos` exits with.
#[derive(Debug)]
pub(crate) struct CommandExit(pub(crate) u8);

impl std::fmt::Display for CommandExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the command exited with code {}", self.0)
    }
}

impl std::error::Error for CommandExit {}

/// Parses the command line and runs the command.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Admin {
            command,
            config,
            database_url,
            data_dir,
        } => admin::run(command, config, database_url, data_dir, &out).await,
        command => match client(cli.url, cli.api_key) {
            Ok(client) => match command {
                Command::Whoami => resources::whoami(&client, &out).await,
                Command::Workspace { command } => {
                    resources::workspace(&client, command, &out).await
                }
                Command::Template { command } => resources::template(&client, command, &out).await,
                Command::Keys { command } => resources::keys(&client, command, &out).await,
                Command::Credits { command } => credits::run(&client, command, &out).await,
                Command::Session { command } => sessions::run(&client, command, &out).await,
                Command::Shell { session } => shell::run(&client, session).await,
                Command::Storage { command } => storage::run(&client, command, &out).await,
                Command::Estimate(args) => sessions::estimate(&client, args, &out).await,
                Command::Optimize(args) => optimize::run(&client, args, &out).await,
                Command::Serve(_) | Command::Admin { .. } => Ok(()),
            },
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<CommandExit>().is_some() => {
            ExitCode::from(e.downcast_ref::<CommandExit>().map_or(1, |c| c.0))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The client for user commands: flags first, then `ONMEMOS_URL` / `ONMEMOS_API_KEY` from the
/// environment or a `.env` file.
fn client(url: Option<String>, key: Option<String>) -> anyhow::Result<onmemos::client::Client> {
    // `main` loaded the .env file into the environment before the runtime started.
    let url = url
        .or_else(|| std::env::var("ONMEMOS_URL").ok())
        .unwrap_or_else(|| onmemos::client::DEFAULT_URL.to_owned());
    let key = key
        .or_else(|| std::env::var("ONMEMOS_API_KEY").ok())
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no API key: pass --api-key, or set ONMEMOS_API_KEY (in the environment or .env)"
            )
        })?;
    Ok(onmemos::client::Client::builder()
        .base_url(url)
        .api_key(key.trim())
        .build()?)
}
