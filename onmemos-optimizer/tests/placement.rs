//! Spot placement on seeded random catalogs: every policy bound holds, the savings add up, and
//! on small catalogs the greedy choice is compared with an exhaustive search.

use std::collections::BTreeSet;

use onmemos_core::ports::optimizer::{
    CapacityType, NodeOffering, OptimizerPolicy, ResourceVector, Toleration, WorkloadInfo,
};
use onmemos_optimizer::placement::{
    HOURS_PER_MONTH, OfferingRisk, PlacementPlan, dominant_share, place,
};
use onmemos_optimizer::risk::RiskModel;
use onmemos_optimizer::synthetic::{Rng, offerings};

const GIB: u64 = 1 << 30;

fn model() -> RiskModel {
    RiskModel::shipped().unwrap_or_else(|e| panic!("shipped model: {e}"))
}

fn random_case(rng: &mut Rng) -> (Vec<NodeOffering>, WorkloadInfo, OptimizerPolicy) {
    let types = 3 + rng.below(25) as usize;
    let zones = 1 + rng.below(4) as usize;
    let catalog = offerings(rng, types, zones);
    let workload = WorkloadInfo {
        name: "Deployment/web".into(),
        replicas: 1 + rng.below(40) as u32,
        requests: ResourceVector {
            cpu_millis: 100 + rng.below(6000),
            memory_bytes: GIB / 4 + rng.below(24 * GIB),
            gpus: u32::from(rng.below(12) == 0),
            pods: 1,
        },
        interruptible: rng.below(6) != 0,
        max_interruption_risk: (rng.below(3) == 0).then(|| 0.03 + 0.2 * rng.unit()),
        node_selector: Default::default(),
        tolerations: if rng.below(4) == 0 {
            vec![Toleration {
                key: Some("dedicated".into()),
                value: None,
                effect: None,
            }]
        } else {
            Vec::new()
        },
    };
    let policy = OptimizerPolicy {
        max_spot_share: *rng.pick(&[0.0, 0.3, 0.5, 0.7, 0.9, 1.0]),
        min_instance_types: 1 + rng.below(4) as u32,
        min_zones: 1 + rng.below(3) as u32,
        max_interruption_risk: 0.04 + 0.3 * rng.unit(),
        ..OptimizerPolicy::default()
    };
    (catalog, workload, policy)
}

fn replica_cost(w: &WorkloadInfo, o: &NodeOffering) -> Option<f64> {
    (w.admitted_by(o))
        .then(|| dominant_share(&w.requests, &o.allocatable))
        .flatten()
        .map(|s| s * o.price_per_hour as f64)
}

/// Checks every bound of the policy on `plan`, from the inputs alone.
fn check(
    plan: &PlacementPlan,
    catalog: &[NodeOffering],
    w: &WorkloadInfo,
    policy: &OptimizerPolicy,
    risk: &OfferingRisk<'_>,
) {
    let spot: u32 = plan.spot.iter().map(|c| c.replicas).sum();
    assert_eq!(
        spot + plan.on_demand_replicas,
        w.replicas,
        "replicas add up"
    );
    let cap = (f64::from(w.replicas) * policy.max_spot_share + 1e-9).floor() as u32;
    assert!(
        spot <= cap,
        "{spot} spot replicas above the share cap {cap}"
    );
    let cheapest_on_demand = catalog
        .iter()
        .filter(|o| o.capacity_type == CapacityType::OnDemand)
        .filter_map(|o| replica_cost(w, o))
        .fold(f64::INFINITY, f64::min);
    assert!((plan.baseline.replica_cost_per_hour - cheapest_on_demand).abs() < 1e-6);
    if plan.spot.is_empty() {
        assert!(plan.on_demand_reason.is_some(), "no spot and no reason");
        assert_eq!(plan.monthly_savings, 0);
        return;
    }
    assert!(
        w.interruptible,
        "a workload that does not tolerate interruption went to spot"
    );
    let types: BTreeSet<_> = plan.spot.iter().map(|c| &c.instance_type).collect();
    let zones: BTreeSet<_> = plan.spot.iter().map(|c| &c.zone).collect();
    assert!(
        types.len() >= policy.min_instance_types as usize,
        "too few types"
    );
    assert!(zones.len() >= policy.min_zones as usize, "too few zones");
    let k = policy.min_instance_types.max(policy.min_zones).max(1);
    let bound = w
        .max_interruption_risk
        .map_or(policy.max_interruption_risk, |b| {
            b.min(policy.max_interruption_risk)
        });
    let mut expected = 0.0;
    for c in &plan.spot {
        assert!(
            c.replicas >= 1 && c.replicas <= spot.div_ceil(k),
            "pool over its share"
        );
        let o = catalog
            .iter()
            .find(|o| {
                o.capacity_type == CapacityType::Spot
                    && o.instance_type == c.instance_type
                    && o.zone == c.zone
            })
            .unwrap_or_else(|| panic!("{}/{} is not offered", c.instance_type, c.zone));
        let cost =
            replica_cost(w, o).unwrap_or_else(|| panic!("{} does not admit", c.instance_type));
        let r = risk.probability(o);
        assert!(
            r <= bound + 1e-12,
            "{}: risk {r} above {bound}",
            c.instance_type
        );
        assert!(cost < plan.baseline.replica_cost_per_hour, "no saving");
        expected += f64::from(c.replicas)
            * (plan.baseline.replica_cost_per_hour - cost)
            * (1.0 - r)
            * HOURS_PER_MONTH;
    }
    assert!(
        (plan.monthly_savings as f64 - expected).abs() <= 1.0,
        "savings do not add up"
    );
    assert!(plan.monthly_savings > 0 && plan.monthly_savings <= plan.gross_monthly_savings);
    assert!(plan.risk > 0.0 && plan.risk < 1.0);
    let rec = plan
        .recommendation()
        .unwrap_or_else(|| panic!("no recommendation"));
    assert_eq!(rec.monthly_savings, plan.monthly_savings);
}

#[test]
fn every_policy_bound_holds_on_seeded_random_catalogs() {
    let model = model();
    let (mut spot_plans, mut on_demand_plans, mut unplaceable) = (0, 0, 0);
    for seed in 0..400 {
        let mut rng = Rng::new(seed);
        let (catalog, workload, policy) = random_case(&mut rng);
        let risk = OfferingRisk::new(&model, "us-east-1", &catalog);
        let Some(plan) = place(&workload, &catalog, &policy, &risk)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
        else {
            let admits = catalog
                .iter()
                .filter(|o| o.capacity_type == CapacityType::OnDemand)
                .any(|o| replica_cost(&workload, o).is_some());
            assert!(
                !admits,
                "seed {seed}: no plan though an on-demand offering admits a replica"
            );
            unplaceable += 1;
            continue;
        };
        check(&plan, &catalog, &workload, &policy, &risk);
        if plan.spot.is_empty() {
            on_demand_plans += 1;
        } else {
            spot_plans += 1;
        }
    }
    // Both branches are exercised, so the checks above are not vacuous.
    assert!(spot_plans >= 100, "only {spot_plans} plans used spot");
    assert!(
        on_demand_plans >= 50,
        "only {on_demand_plans} plans stayed on demand"
    );
    eprintln!("{spot_plans} spot plans, {on_demand_plans} on demand, {unplaceable} unplaceable");
}

/// The best total expected saving over every set of `k` eligible pools that satisfies the
/// diversity rules, with replicas spread as the engine spreads them.
fn exhaustive(
    pools: &[(String, String, f64)],
    k: usize,
    spot: u32,
    policy: &OptimizerPolicy,
) -> Option<f64> {
    let n = pools.len();
    let mut best: Option<f64> = None;
    let mut subset: Vec<usize> = (0..k).collect();
    if k > n {
        return None;
    }
    loop {
        let types: BTreeSet<_> = subset.iter().map(|&i| &pools[i].0).collect();
        let zones: BTreeSet<_> = subset.iter().map(|&i| &pools[i].1).collect();
        if types.len() >= policy.min_instance_types as usize
            && zones.len() >= policy.min_zones as usize
        {
            let mut values: Vec<f64> = subset.iter().map(|&i| pools[i].2).collect();
            values.sort_by(|a, b| b.total_cmp(a));
            let total: f64 = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    f64::from(spot / k as u32 + u32::from((i as u32) < spot % k as u32)) * v
                })
                .sum();
            best = Some(best.map_or(total, |b: f64| b.max(total)));
        }
        // Next combination.
        let mut i = k;
        loop {
            if i == 0 {
                return best;
            }
            i -= 1;
            if subset[i] < n - k + i {
                subset[i] += 1;
                for j in i + 1..k {
                    subset[j] = subset[j - 1] + 1;
                }
                break;
            }
        }
    }
}

#[test]
fn greedy_choice_against_exhaustive_search_on_small_catalogs() {
    let model = model();
    let (mut compared, mut optimal, mut worst) = (0, 0, 1.0f64);
    for seed in 1000..1300 {
        let mut rng = Rng::new(seed);
        let (catalog, mut workload, mut policy) = random_case(&mut rng);
        workload.interruptible = true;
        workload.replicas = workload.replicas.max(8);
        policy.max_spot_share = policy.max_spot_share.max(0.5);
        let risk = OfferingRisk::new(&model, "us-east-1", &catalog);
        let Some(plan) = place(&workload, &catalog, &policy, &risk)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
        else {
            continue;
        };
        let eligible: Vec<(String, String, f64)> = plan
            .rejected
            .iter()
            .filter_map(|r| match r.why {
                onmemos_optimizer::placement::Rejection::Outranked { saving, .. } => {
                    Some((r.instance_type.clone(), r.zone.clone(), saving))
                }
                _ => None,
            })
            .chain(plan.spot.iter().map(|c| {
                (
                    c.instance_type.clone(),
                    c.zone.clone(),
                    c.expected_monthly_saving_per_replica,
                )
            }))
            .collect();
        if eligible.len() > 18 {
            continue;
        }
        let k = policy.min_instance_types.max(policy.min_zones) as usize;
        let spot = (f64::from(workload.replicas) * policy.max_spot_share + 1e-9).floor() as u32;
        let best = exhaustive(&eligible, k, spot, &policy);
        let got: f64 = plan
            .spot
            .iter()
            .map(|c| f64::from(c.replicas) * c.expected_monthly_saving_per_replica)
            .sum();
        match best {
            None => assert!(
                plan.spot.is_empty(),
                "seed {seed}: placed where no set is feasible"
            ),
            Some(best) => {
                assert!(
                    !plan.spot.is_empty(),
                    "seed {seed}: a feasible set exists but none was found"
                );
                assert!(got <= best + 1e-6, "seed {seed}: above the optimum");
                compared += 1;
                let ratio = got / best;
                if ratio > 1.0 - 1e-9 {
                    optimal += 1;
                }
                worst = worst.min(ratio);
            }
        }
    }
    eprintln!(
        "greedy placement: optimal on {optimal} of {compared}, worst {worst:.3} of the optimum"
    );
    assert!(compared >= 50, "only {compared} cases compared");
    assert!(
        worst >= 0.9,
        "greedy reached only {worst:.3} of the optimum"
    );
}

#[test]
fn bad_policy_and_unplaceable_workloads_are_reported() {
    let model = model();
    let mut rng = Rng::new(7);
    let (catalog, workload, _) = random_case(&mut rng);
    let risk = OfferingRisk::new(&model, "us-east-1", &catalog);
    let policy = OptimizerPolicy {
        max_spot_share: 1.5,
        ..OptimizerPolicy::default()
    };
    let e = place(&workload, &catalog, &policy, &risk)
        .err()
        .unwrap_or_else(|| panic!("accepted a share of 1.5"));
    assert!(e.message().contains("max_spot_share"), "{}", e.message());
    let huge = WorkloadInfo {
        requests: ResourceVector {
            cpu_millis: 10_000_000,
            ..workload.requests
        },
        ..workload.clone()
    };
    let plan = place(&huge, &catalog, &OptimizerPolicy::default(), &risk)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(plan.is_none(), "a replica no offering fits was placed");
}
