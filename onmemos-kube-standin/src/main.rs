//! `onmemos-kube-standin --listen 127.0.0.1:PORT --kubeconfig FILE`: a Kubernetes API server
//! stand-in for a person or a script to point `kubectl` at.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(version, about = "A Kubernetes API server stand-in on loopback")]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at it.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let standin = match onmemos_kube_standin::StandIn::bind(args.listen).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.kubeconfig
        && let Err(e) = std::fs::write(path, onmemos_kube_standin::kubeconfig_yaml(standin.url()))
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return std::process::ExitCode::FAILURE;
    }
    println!("listening on {}", standin.url());
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
