//! Trains the spot interruption risk model and prints its held-out evaluation.
//!
//! ```text
//! cargo run --release -p onmemos-optimizer --example train_risk_model -- \
//!     ../shared/data/aws-spot-advisor-2025.json onmemos-optimizer/models/spot-risk-v1.json
//! ```
//!
//! The same feed always gives the same model (the split is a hash of each pool, the fit is
//! deterministic full-batch Adam).

use std::process::ExitCode;

use onmemos_optimizer::catalog::SpotAdvisorFeed;
use onmemos_optimizer::risk::{TrainingOptions, train_and_evaluate};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [feed_path, out_path] = args.as_slice() else {
        eprintln!("usage: train_risk_model <spot-advisor-data.json> <model.json>");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(feed_path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {feed_path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let feed = match SpotAdvisorFeed::from_json(&text) {
        Ok(feed) => feed,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let model = train_and_evaluate(&feed, TrainingOptions::default());
    eprintln!("trained in {:.2?}: {}", started.elapsed(), model.trained_on);
    if let Some(evaluation) = &model.evaluation {
        print!("{}", evaluation.table());
    }
    if let Err(e) = std::fs::write(out_path, model.to_json() + "\n") {
        eprintln!("cannot write {out_path}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
