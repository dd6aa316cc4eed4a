//! `onmemos serve`.

use std::path::PathBuf;

use crate::config::{FlagOverrides, LogFormat, ServeConfig};
use anyhow::Context;
use clap::Args;
use onmemos::Engine;
use onmemos::core::api::CreateUser;
use onmemos::core::model::Role;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Configuration file (TOML) [env: ONMEMOS_CONFIG; default: ./onmemos.toml if present]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [env: ONMEMOS_LISTEN; default: 127.0.0.1:8080]
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory [env: ONMEMOS_DATA_DIR; default: ./onmemos-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL, `sqlite://…` or `postgres://…` [env: ONMEMOS_DATABASE_URL; default: SQLite
    /// in the data directory]
    #[arg(long, alias = "database")]
    database_url: Option<String>,
    /// Where sessions run: `local://`, `local://?sandbox=off`, `kube://[CONTEXT|in-cluster]?…`
    /// or `none` [env: ONMEMOS_COMPUTE_URL; default: local://]
    #[arg(long)]
    compute_url: Option<String>,
    /// Where workspace files live: `file://`, `s3://…`, `gs://…`, `az://…`, `memory://` or
    /// `none` [env: ONMEMOS_STORAGE_URL; default: file://]
    #[arg(long)]
    storage_url: Option<String>,
    /// Log format: pretty or json [env: ONMEMOS_LOG_FORMAT]
    #[arg(long, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    /// When the database has no users yet, create this admin and write its credentials to
    /// `<data_dir>/credentials.env` (readable only by you).
    #[arg(long, value_name = "EMAIL")]
    bootstrap_admin: Option<String>,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected `pretty` or `json`, got {s:?}")),
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let flags = FlagOverrides {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        compute_url: args.compute_url,
        storage_url: args.storage_url,
        log_format: args.log_format,
    };
    let config = ServeConfig::load(args.config.as_deref(), &flags)?;
    init_tracing(config.log_format);
    let engine = config.open_engine().await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (key `listen`)", config.listen))?;
    let addr = listener.local_addr()?;
    if let Some(email) = args.bootstrap_admin {
        bootstrap(&engine, &config, &email, addr).await?;
    } else if engine.users().count().await? == 0 {
        tracing::warn!(
            "no users yet: create the first admin with `onmemos admin create-user --email you@example.com --admin`"
        );
    }
    // Reconciles what a previous run left, then charges and watches sessions.
    let _monitor = engine.compute().is_some().then(|| engine.monitor().spawn());
    tracing::info!(
        %addr,
        database = %engine.database().capabilities().name,
        compute = %engine.compute().map_or("none", |c| c.capabilities().name),
        node = %engine.node(),
        "listening"
    );
    let app = onmemos::server::router_with(engine, config.server.clone());
    onmemos::server::serve(listener, app, &config.server, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn bootstrap(
    engine: &Engine,
    config: &ServeConfig,
    email: &str,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let path = config.data_dir.join("credentials.env");
    if engine.users().count().await? > 0 {
        tracing::info!(credentials = %path.display(), "users exist; not bootstrapping an admin");
        return Ok(());
    }
    let created = engine
        .users()
        .bootstrap(CreateUser {
            email: email.to_owned(),
            name: None,
            role: Some(Role::Admin),
        })
        .await?;
    let text = format!(
        "ONMEMOS_URL=http://{addr}\nONMEMOS_API_KEY={}\n",
        created.api_key.secret
    );
    write_private(&path, &text)?;
    tracing::info!(user = %created.user.id, credentials = %path.display(), "first admin created");
    Ok(())
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
