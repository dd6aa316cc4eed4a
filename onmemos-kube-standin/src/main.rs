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
    /// A JSON file of nodes to add at start: `[{"name": "n1", "labels": {…},
    /// "cpu_millis": 4000, "memory_bytes": 17179869184, "pods": 110, "taints": [{"key": …,
    /// "value": …, "effect": "NoSchedule"}]}]` (all but `name` optional).
    #[arg(long)]
    nodes: Option<PathBuf>,
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
    if let Some(path) = &args.nodes {
        let nodes: Vec<onmemos_kube_standin::NodeSpec> = match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(nodes) => nodes,
            Err(e) => {
                eprintln!("error: --nodes {}: {e}", path.display());
                return std::process::ExitCode::FAILURE;
            }
        };
        for node in &nodes {
            if let Err(e) = standin.cluster().add_node(node) {
                eprintln!("error: node {}: {e}", node.name);
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    println!("listening on {}", standin.url());
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
