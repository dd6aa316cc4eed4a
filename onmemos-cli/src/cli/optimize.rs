//! `onmemos optimize`: a cluster snapshot in, a report out.

use std::path::{Path, PathBuf};

use onmemos::client::Client;
use onmemos::client::api::OptimizationReport;
use onmemos::client::optimizer::{ClusterSnapshot, OptimizationRequest, OptimizerPolicy};

use super::Output;
use super::credits::credits;

/// What to optimize.
#[derive(Debug, clap::Args)]
pub(crate) struct OptimizeArgs {
    /// The cluster: a snapshot, or a request with `snapshot` and `policy` (JSON).
    #[arg(long, value_name = "FILE")]
    snapshot: PathBuf,
    /// A policy (JSON) replacing the request's, if any.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Print each recommendation's figures and the alternatives that lost.
    #[arg(long)]
    details: bool,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {what} {}: {e}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        anyhow::anyhow!(
            "{}: invalid {what}{}: {}",
            path.display(),
            if at == "." {
                String::new()
            } else {
                format!(" at {at}")
            },
            e.inner()
        )
    })
}

/// The request in `args`: a file holding a request (it has a `snapshot` field) or a bare
/// snapshot, and the policy file if given.
fn request(args: &OptimizeArgs) -> anyhow::Result<OptimizationRequest> {
    let value: serde_json::Value = read_json(&args.snapshot, "JSON")?;
    let mut request = if value.get("snapshot").is_some() {
        read_json::<OptimizationRequest>(&args.snapshot, "optimization request")?
    } else {
        OptimizationRequest {
            snapshot: read_json::<ClusterSnapshot>(&args.snapshot, "cluster snapshot")?,
            policy: OptimizerPolicy::default(),
        }
    };
    if let Some(path) = &args.policy {
        request.policy = read_json(path, "policy")?;
    }
    Ok(request)
}

fn kind_name(kind: &impl serde::Serialize) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

pub(crate) async fn run(client: &Client, args: OptimizeArgs, out: &Output) -> anyhow::Result<()> {
    let request = request(&args)?;
    let report: OptimizationReport = client.optimizer().recommendations(&request).await?;
    let rows = report.recommendations.iter().map(|r| {
        let mut action = r.summary.clone();
        if args.details {
            for d in &r.details {
                action.push_str("\n  ");
                action.push_str(d);
            }
        }
        vec![
            kind_name(&r.kind),
            r.target.clone(),
            credits(r.monthly_savings),
            format!("{:.1}%", 100.0 * r.risk),
            action,
        ]
    });
    out.print(
        &report,
        &["kind", "target", "saving/month", "risk", "action"],
        rows,
    )?;
    if !out.json {
        if report.recommendations.is_empty() {
            println!("no recommendation: nothing to save under this policy");
        }
        println!("expected monthly savings (kinds overlap: add within a kind, not across):");
        for t in &report.totals {
            println!(
                "  {:<15} {:>14} credits over {} recommendation(s)",
                kind_name(&t.kind),
                credits(t.monthly_savings),
                t.count
            );
        }
    }
    Ok(())
}
