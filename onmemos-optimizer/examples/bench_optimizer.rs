//! Optimizer benchmarks: bin packing (10k pods, 1k nodes, 200 instance types) next to
//! first-fit decreasing, and rightsizing (10k containers × 8 days of 1-minute samples) next to
//! an exact sort-based percentile. Prints each figure as a ratio against its baseline from the
//! same run. Run through `scripts/bench-optimizer.sh`.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use onmemos_core::ports::optimizer::{
    ClusterSnapshot, OptimizationRequest, OptimizerPolicy, PodInfo, RecommendationKind,
};
use onmemos_optimizer::CostOptimizer;
use onmemos_optimizer::packing::{consolidate, first_fit_decreasing};
use onmemos_optimizer::rightsizing::{RightsizingOptions, UnitPrices, exact_targets, rightsize};
use onmemos_optimizer::synthetic::{ClusterShape, Rng, cluster, pod_with_usage, usage};

fn packing_shape() -> ClusterShape {
    ClusterShape {
        instance_types: 200,
        nodes: 1000,
        pods: 10_000,
        zones: 3,
        constrained_share: 0.02,
        pdbs: 0,
    }
}

fn packing(seed: u64) {
    let synthetic = cluster(seed, &packing_shape());
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

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(1);
}

fn rightsizing(seed: u64) {
    const CONTAINERS: usize = 10_000;
    let mut rng = Rng::new(seed);
    let start: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
    let pods: Vec<PodInfo> = (0..CONTAINERS)
        .map(|i| {
            let usage = usage(&mut rng, start, 8, 60);
            pod_with_usage(
                &format!("default/pod-{i}"),
                &format!("Deployment/app-{i}"),
                (1000, 2 << 30),
                usage,
            )
        })
        .collect();
    let samples: usize = pods
        .iter()
        .filter_map(|p| p.usage.as_ref())
        .map(|u| u.cpu_millis.len())
        .sum();
    let snapshot = ClusterSnapshot::of_pods(start + Duration::days(8), pods);
    let options = RightsizingOptions::default();
    let prices = UnitPrices::default();
    let started = Instant::now();
    let sizings = rightsize(&snapshot, &prices, &options).unwrap_or_else(|e| fail("rightsize", e));
    let engine_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let exact = exact_targets(&snapshot, &options).unwrap_or_else(|e| fail("exact", e));
    let exact_secs = started.elapsed().as_secs_f64();
    // How far the histogram's targets (margin removed) sit above the exact percentiles, and
    // whether each is within one bucket (5% plus the first bucket's 10 millicores) of it.
    let margin = 1.0 + options.safety_margin;
    let mut excess: Vec<f64> = Vec::with_capacity(exact.len());
    let mut within = 0;
    for (s, (_, cpu, _)) in sizings.iter().zip(&exact) {
        let histogram = (s.cpu.target as f64 - 1.0) / margin;
        excess.push(histogram / cpu.max(1.0) - 1.0);
        within += usize::from(histogram <= cpu * 1.05 + 10.0);
    }
    excess.sort_by(f64::total_cmp);
    let median = excess.get(excess.len() / 2).copied().unwrap_or(0.0);
    println!(
        "rightsizing {CONTAINERS} containers x 8 days of 1-minute samples ({samples} samples, \
         {} threads): engine {engine_secs:.3} s; exact sort-based percentiles {exact_secs:.3} s; \
         engine/exact time {:.3}; cpu p90 {:.2}% above the exact one (median), within one \
         bucket of it for {within} of {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        engine_secs / exact_secs.max(1e-9),
        100.0 * median,
        exact.len()
    );
}

/// The whole optimizer (every engine, the default policy) on the packing benchmark's cluster:
/// no target, a figure to watch.
fn whole(seed: u64) {
    let mut synthetic = cluster(seed, &packing_shape());
    synthetic.snapshot.offerings = synthetic.offerings;
    synthetic.snapshot.region = Some("us-east-1".into());
    let request = OptimizationRequest {
        snapshot: synthetic.snapshot,
        policy: OptimizerPolicy::default(),
    };
    let optimizer = CostOptimizer::new().unwrap_or_else(|e| fail("optimizer", e));
    let started = Instant::now();
    let recs = optimizer
        .run(&request)
        .unwrap_or_else(|e| fail("optimizer", e));
    let secs = started.elapsed().as_secs_f64();
    let spot = recs
        .iter()
        .filter(|r| r.kind == RecommendationKind::SpotPlacement)
        .count();
    println!(
        "whole optimizer on the same cluster (seed {seed}, {} workloads, default policy): {secs:.3} s, \
         {} recommendations ({spot} spot placements)",
        onmemos_optimizer::cost::workloads(&request.snapshot).len(),
        recs.len()
    );
}

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    packing(seed);
    whole(seed);
    rightsizing(seed);
}
