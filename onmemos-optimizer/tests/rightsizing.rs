//! Rightsizing: percentiles worked out by hand, decay, daily memory peaks, the OOM bump, the
//! histogram against exact sort-based percentiles, and bad input.

use chrono::{DateTime, Duration, Utc};
use onmemos_core::ports::optimizer::{ClusterSnapshot, PodInfo, RecommendationKind, UsageSeries};
use onmemos_optimizer::rightsizing::{
    RightsizingOptions, Sizing, UnitPrices, exact_targets, rightsize,
};
use onmemos_optimizer::synthetic::{Rng, pod_with_usage, usage};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000)
}

fn pod(name: &str, requests: (u64, u64), usage: UsageSeries) -> PodInfo {
    pod_with_usage(name, &format!("Deployment/{name}"), requests, usage)
}

fn snapshot(taken_at: DateTime<Utc>, pods: Vec<PodInfo>) -> ClusterSnapshot {
    ClusterSnapshot::of_pods(taken_at, pods)
}

fn series(step_secs: u32, cpu: Vec<u32>, memory: Vec<u64>) -> UsageSeries {
    UsageSeries {
        start: t0(),
        step_secs,
        cpu_millis: cpu,
        memory_bytes: memory,
        oom_kills: 0,
    }
}

/// No decay: every weight exactly 1.
fn flat() -> RightsizingOptions {
    RightsizingOptions {
        half_life_hours: f64::INFINITY,
        ..RightsizingOptions::default()
    }
}

fn size_one(snapshot: &ClusterSnapshot, options: &RightsizingOptions) -> Sizing {
    let mut out = rightsize(snapshot, &UnitPrices::default(), options)
        .unwrap_or_else(|e| panic!("rightsize: {e}"));
    assert_eq!(out.len(), 1);
    out.remove(0)
}

#[test]
fn cpu_percentiles_match_the_hand_computed_buckets() {
    // Ten hourly samples 100, 200, … 1000 millicores, equal weights. Bucket i starts at
    // 10 × (1.05^i − 1) / 0.05 = 200 × (1.05^i − 1) millicores.
    // - p90: cumulative weight reaches 9 of 10 at 900, in bucket 34 (1.05^34 ≤ 5.5 < 1.05^35);
    //   its upper edge is 200 × (1.05^35 − 1) = 903.2; plus 15% = 1038.7 → 1039.
    // - p50: 500 is in bucket 25, edge 200 × (1.05^26 − 1) = 511.13; × 1.15 × (1 + 0.001/c)^-2
    //   with c = 10 h = 0.4167 days → 584.99 → 585.
    // - p95: 1000 is in bucket 36, edge 200 × (1.05^37 − 1) = 1016.28; × 1.15 × (1 + 1/c)
    //   = × 1.15 × 3.4 → 3973.66 → 3974.
    let cpu: Vec<u32> = (1..=10).map(|i| i * 100).collect();
    let s = snapshot(
        t0() + Duration::hours(10),
        vec![pod(
            "web",
            (4000, 4 * GIB),
            series(3600, cpu, vec![GIB; 10]),
        )],
    );
    let sizing = size_one(&s, &flat());
    assert_eq!(sizing.cpu.target, 1039);
    assert_eq!(sizing.cpu.lower, 585);
    assert_eq!(sizing.cpu.upper, 3974);
    assert!((sizing.confidence_days - 10.0 / 24.0).abs() < 1e-9);
    // 4000m is above the upper bound 3974m: a change, to the target.
    assert!(sizing.change);
    assert_eq!(sizing.requests.cpu_millis, 1039);
}

#[test]
fn older_samples_weigh_less() {
    // 100m a day before the snapshot (weight 1/2), 1000m at it (weight 1). The p50 threshold
    // is 0.75: the 100m bucket (cumulative 0.5) does not reach it, so p50 is the 1000m bucket's
    // edge, 1016.28, where equal weights would give the 100m bucket's, 110.27.
    let s = snapshot(
        t0() + Duration::days(1),
        vec![pod(
            "batch",
            (500, GIB),
            series(86_400, vec![100, 1000], vec![GIB, GIB]),
        )],
    );
    let options = RightsizingOptions {
        target_percentile: 0.5,
        safety_margin: 0.0,
        ..RightsizingOptions::default()
    };
    assert_eq!(size_one(&s, &options).cpu.target, 1017);
    let undecayed = RightsizingOptions {
        half_life_hours: f64::INFINITY,
        ..options
    };
    assert_eq!(size_one(&s, &undecayed).cpu.target, 111);
}

#[test]
fn memory_comes_from_daily_peaks_and_an_oom_raises_it() {
    // Three days of hourly samples at 512 MiB with one peak a day: 1, 2 and 3 GiB. p90 of
    // the three peaks is the 3 GiB one, in memory bucket 58 (start 2e8 × (1.05^i − 1) bytes);
    // its edge is 2e8 × (1.05^59 − 1) = 3,357,940,170.3; plus 15% → 3,861,631,196.
    let mut memory = vec![512 * MIB; 72];
    memory[5] = GIB;
    memory[30] = 2 * GIB;
    memory[60] = 3 * GIB;
    let cpu = vec![200; 72];
    let s = snapshot(
        t0() + Duration::days(3),
        vec![pod(
            "db",
            (500, 8 * GIB),
            series(3600, cpu.clone(), memory.clone()),
        )],
    );
    let sizing = size_one(&s, &flat());
    assert_eq!(sizing.memory.target, 3_861_631_196);
    assert!(sizing.change, "8 GiB is above the upper bound");
    assert!(sizing.monthly_savings == 0, "no prices, no saving");

    // The same pod OOM-killed, its peak 3 GiB: at least max(3 GiB × 1.2, 3 GiB + 100 MiB).
    let mut oom = series(3600, cpu, memory);
    oom.oom_kills = 2;
    let s = snapshot(
        t0() + Duration::days(3),
        vec![pod("db", (500, 8 * GIB), oom)],
    );
    let sizing = size_one(&s, &flat());
    let bumped = (3.0 * GIB as f64 * 1.2).ceil() as u64;
    assert_eq!(sizing.memory.target, bumped);
    assert_eq!(sizing.memory.lower, bumped);
    assert!(
        sizing
            .recommendation()
            .is_some_and(|r| r.details.iter().any(|d| d.contains("OOM")))
    );
}

#[test]
fn a_request_within_its_bounds_is_left_alone_and_a_large_one_saves() {
    let mut rng = Rng::new(3);
    let u = usage(&mut rng, t0(), 8, 60);
    let taken_at = t0() + Duration::days(8);
    let s = snapshot(taken_at, vec![pod("api", (64_000, 64 * GIB), u.clone())]);
    let prices = UnitPrices {
        per_core_hour: 30_000.0,
        per_gib_hour: 4_000.0,
    };
    let sizing = rightsize(&s, &prices, &RightsizingOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    let rec = sizing
        .recommendation()
        .unwrap_or_else(|| panic!("64 cores kept"));
    assert_eq!(rec.kind, RecommendationKind::Rightsizing);
    let expected = ((64_000.0 - sizing.requests.cpu_millis as f64) / 1000.0 * 30_000.0
        + (64.0 * GIB as f64 - sizing.requests.memory_bytes as f64) / GIB as f64 * 4_000.0)
        * 720.0;
    assert!((rec.monthly_savings as f64 - expected).abs() <= 1.0);
    assert!(rec.monthly_savings > 0);
    // Now request exactly the target: inside [lower, upper], nothing to do.
    let fitted = (sizing.requests.cpu_millis, sizing.requests.memory_bytes);
    let s = snapshot(taken_at, vec![pod("api", fitted, u)]);
    let again = rightsize(&s, &prices, &RightsizingOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    assert!(!again.change && again.recommendation().is_none());
}

#[test]
fn histogram_percentiles_stay_within_a_bucket_of_the_exact_ones() {
    let mut rng = Rng::new(11);
    let pods: Vec<PodInfo> = (0..40)
        .map(|i| pod(&format!("w{i}"), (1000, GIB), usage(&mut rng, t0(), 3, 60)))
        .collect();
    let s = snapshot(t0() + Duration::days(3), pods);
    let options = RightsizingOptions {
        safety_margin: 0.0,
        ..RightsizingOptions::default()
    };
    let sizings = rightsize(&s, &UnitPrices::default(), &options).unwrap_or_else(|e| panic!("{e}"));
    let exact = exact_targets(&s, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sizings.len(), exact.len());
    for (sizing, (name, cpu, memory)) in sizings.iter().zip(&exact) {
        assert_eq!(&sizing.workload, name);
        // The histogram gives the upper edge of the exact value's bucket: above it, and by
        // less than one bucket (5% and the first bucket's width).
        let (got_cpu, got_memory) = (sizing.cpu.target as f64, sizing.memory.target as f64);
        assert!(
            got_cpu >= *cpu && got_cpu <= cpu * 1.05 + 10.0 + 1.0,
            "{name}: {got_cpu} vs {cpu}"
        );
        assert!(
            got_memory >= *memory && got_memory <= memory * 1.05 + 1e7 + 1.0,
            "{name}: {got_memory} vs {memory}"
        );
    }
}

#[test]
fn malformed_usage_is_refused_naming_the_pod() {
    let bad = series(60, vec![1, 2, 3], vec![GIB, GIB]);
    let s = snapshot(t0(), vec![pod("broken", (100, GIB), bad)]);
    let e = rightsize(&s, &UnitPrices::default(), &RightsizingOptions::default())
        .err()
        .unwrap_or_else(|| panic!("accepted mismatched series"));
    assert!(
        e.message().contains("broken") && e.message().contains("3 cpu samples"),
        "{}",
        e.message()
    );
    let zero = series(0, vec![1], vec![GIB]);
    let s = snapshot(t0(), vec![pod("zero", (100, GIB), zero)]);
    let e = rightsize(&s, &UnitPrices::default(), &RightsizingOptions::default())
        .err()
        .unwrap_or_else(|| panic!("accepted a zero step"));
    assert!(e.message().contains("step_secs"), "{}", e.message());
    let options = RightsizingOptions {
        target_percentile: 1.5,
        ..RightsizingOptions::default()
    };
    let e = rightsize(&s, &UnitPrices::default(), &options)
        .err()
        .unwrap_or_else(|| panic!("accepted a percentile of 1.5"));
    assert!(e.message().contains("target_percentile"), "{}", e.message());
}
