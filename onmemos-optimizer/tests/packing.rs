//! Bin packing and consolidation on seeded random clusters: every plan satisfies every
//! constraint, is never worse than first-fit decreasing, never below its lower bound, and on
//! small clusters is compared with the optimum found by exhaustive search.

use onmemos_core::model::MicroCredits;
use onmemos_core::ports::optimizer::{NodeOffering, OptimizerPolicy, ResourceVector};
use onmemos_optimizer::packing::{check_plan, consolidate, first_fit_decreasing};
use onmemos_optimizer::synthetic::{ClusterShape, SyntheticCluster, cluster};

fn unlimited() -> OptimizerPolicy {
    OptimizerPolicy {
        max_drained_nodes: u32::MAX,
        ..OptimizerPolicy::default()
    }
}

#[test]
fn plans_are_valid_never_worse_than_ffd_and_above_their_bound() {
    for seed in 0..40u64 {
        let shape = ClusterShape {
            instance_types: 6 + (seed % 5) as usize * 3,
            nodes: 5 + (seed % 7) as usize * 4,
            pods: 30 + (seed % 9) as usize * 20,
            zones: 2,
            constrained_share: if seed % 3 == 0 { 0.1 } else { 0.0 },
            pdbs: if seed % 2 == 0 { 6 } else { 0 },
        };
        let SyntheticCluster {
            snapshot,
            offerings,
        } = cluster(seed, &shape);
        let budget = if seed % 4 == 0 { 3 } else { u32::MAX };
        let policy = OptimizerPolicy {
            max_drained_nodes: budget,
            ..OptimizerPolicy::default()
        };
        let plan = consolidate(&snapshot, &offerings, &policy)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        check_plan(&snapshot, &offerings, &policy, &plan)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(
            plan.lower_bound_per_hour <= plan.cost_per_hour,
            "seed {seed}: bound {} above cost {} ({} unplaceable, {})",
            plan.lower_bound_per_hour,
            plan.cost_per_hour,
            plan.unplaceable.len(),
            plan.strategy
        );
        let pending = snapshot.pods.iter().any(|p| p.node.is_none());
        assert!(
            pending || plan.cost_per_hour <= plan.current_cost_per_hour,
            "seed {seed}: a plan with nothing pending costs more than the cluster now"
        );
        let ffd = first_fit_decreasing(&snapshot, &offerings)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if check_plan(&snapshot, &offerings, &policy, &ffd).is_ok() {
            assert!(
                (plan.unplaceable.len(), plan.cost_per_hour)
                    <= (ffd.unplaceable.len(), ffd.cost_per_hour),
                "seed {seed}: {} ({}) worse than FFD {}",
                plan.cost_per_hour,
                plan.strategy,
                ffd.cost_per_hour
            );
        }
        if budget != u32::MAX {
            assert!(plan.drained_nodes.len() <= 3, "seed {seed}");
        }
    }
}

/// A seeded cluster (one zone, no constraints, no PDB) in which one running pod has no owner:
/// the snapshot, the offerings, that pod's index and its node.
fn with_a_bare_pod(
    seed: u64,
    instance_types: usize,
    nodes: usize,
    pods: usize,
) -> (
    onmemos_core::ports::optimizer::ClusterSnapshot,
    Vec<NodeOffering>,
    usize,
    String,
) {
    let SyntheticCluster {
        mut snapshot,
        offerings,
    } = cluster(
        seed,
        &ClusterShape {
            instance_types,
            nodes,
            pods,
            zones: 1,
            constrained_share: 0.0,
            pdbs: 0,
        },
    );
    let bare = snapshot
        .pods
        .iter()
        .position(|p| !p.daemonset && p.node.is_some())
        .unwrap_or_else(|| panic!("a running pod"));
    snapshot.pods[bare].owner = None;
    let node = snapshot.pods[bare].node.clone().unwrap_or_default();
    (snapshot, offerings, bare, node)
}

#[test]
fn a_node_with_a_bare_pod_or_an_exhausted_pdb_is_not_drained() {
    let (snapshot, offerings, bare, node) = with_a_bare_pod(7, 6, 8, 40);
    let plan = consolidate(&snapshot, &offerings, &unlimited()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!plan.drained_nodes.contains(&node), "{node} drained");
    assert_eq!(
        plan.placements.get(&snapshot.pods[bare].name),
        Some(&onmemos_optimizer::packing::NodeRef::Existing(node))
    );
}

/// The cheapest placement by exhaustive search: pods in order, each into an open bin or a new
/// bin of any kind (an unused existing node or an offering).
fn brute_force(
    pods: &[[u64; 4]],
    existing: &[([u64; 4], MicroCredits)],
    offerings: &[([u64; 4], MicroCredits)],
) -> MicroCredits {
    struct Search<'a> {
        pods: &'a [[u64; 4]],
        existing: &'a [([u64; 4], MicroCredits)],
        offerings: &'a [([u64; 4], MicroCredits)],
        best: MicroCredits,
    }
    fn go(
        s: &mut Search<'_>,
        i: usize,
        bins: &mut Vec<([u64; 4], [u64; 4])>,
        used: &mut Vec<bool>,
        cost: MicroCredits,
    ) {
        if cost >= s.best {
            return;
        }
        if i == s.pods.len() {
            s.best = cost;
            return;
        }
        let need = s.pods[i];
        let fits = |used: &[u64; 4], cap: &[u64; 4]| (0..4).all(|r| used[r] + need[r] <= cap[r]);
        for b in 0..bins.len() {
            if fits(&bins[b].1, &bins[b].0) {
                for (used, n) in bins[b].1.iter_mut().zip(need) {
                    *used += n;
                }
                go(s, i + 1, bins, used, cost);
                for (used, n) in bins[b].1.iter_mut().zip(need) {
                    *used -= n;
                }
            }
        }
        for e in 0..s.existing.len() {
            let (cap, price) = s.existing[e];
            if !used[e] && fits(&[0; 4], &cap) {
                used[e] = true;
                bins.push((cap, need));
                go(s, i + 1, bins, used, cost + price);
                bins.pop();
                used[e] = false;
            }
        }
        for o in 0..s.offerings.len() {
            let (cap, price) = s.offerings[o];
            if fits(&[0; 4], &cap) {
                bins.push((cap, need));
                go(s, i + 1, bins, used, cost + price);
                bins.pop();
            }
        }
    }
    let mut search = Search {
        pods,
        existing,
        offerings,
        best: MicroCredits::MAX,
    };
    go(
        &mut search,
        0,
        &mut Vec::new(),
        &mut vec![false; existing.len()],
        0,
    );
    search.best
}

fn vector(r: &ResourceVector) -> [u64; 4] {
    [
        r.cpu_millis,
        r.memory_bytes,
        u64::from(r.gpus),
        u64::from(r.pods.max(1)),
    ]
}

#[test]
fn small_clusters_against_exhaustive_search() {
    let mut optimal = 0;
    let cases = 30u64;
    let mut worst: f64 = 1.0;
    for seed in 100..100 + cases {
        let SyntheticCluster {
            snapshot,
            offerings,
        } = cluster(
            seed,
            &ClusterShape {
                instance_types: 6,
                nodes: 3,
                pods: 6,
                zones: 1,
                constrained_share: 0.0,
                pdbs: 0,
            },
        );
        let offerings: Vec<NodeOffering> = offerings
            .into_iter()
            .filter(|o| o.taints.is_empty() && o.allocatable.gpus == 0)
            .collect();
        let plan = consolidate(&snapshot, &offerings, &unlimited())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        // Daemonset overhead as the engine charges it: one agent pod on every node.
        let agent = snapshot
            .pods
            .iter()
            .find(|p| p.daemonset)
            .map(|p| vector(&p.requests))
            .unwrap_or_default();
        let less = |cap: [u64; 4]| -> [u64; 4] { std::array::from_fn(|r| cap[r] - agent[r]) };
        let pods: Vec<[u64; 4]> = snapshot
            .pods
            .iter()
            .filter(|p| !p.daemonset)
            .map(|p| vector(&p.requests))
            .collect();
        let existing: Vec<_> = snapshot
            .nodes
            .iter()
            .map(|n| (less(vector(&n.allocatable)), n.price_per_hour))
            .collect();
        let kinds: Vec<_> = offerings
            .iter()
            .map(|o| (less(vector(&o.allocatable)), o.price_per_hour))
            .collect();
        let fits_alone = |need: &[u64; 4]| {
            existing
                .iter()
                .chain(&kinds)
                .any(|(cap, _)| (0..4).all(|r| need[r] <= cap[r]))
        };
        let (pods, nowhere): (Vec<[u64; 4]>, Vec<[u64; 4]>) =
            pods.into_iter().partition(|p| fits_alone(p));
        assert_eq!(plan.unplaceable.len(), nowhere.len(), "seed {seed}");
        let best = brute_force(&pods, &existing, &kinds);
        assert!(
            plan.lower_bound_per_hour <= best,
            "seed {seed}: bound {} above the optimum {best}",
            plan.lower_bound_per_hour
        );
        assert!(
            plan.cost_per_hour >= best,
            "seed {seed}: plan {} below the optimum {best}: the search or the plan is wrong",
            plan.cost_per_hour
        );
        if plan.cost_per_hour == best {
            optimal += 1;
        } else {
            eprintln!(
                "seed {seed}: {} plan {} against the optimum {best}",
                plan.strategy, plan.cost_per_hour
            );
        }
        worst = worst.max(plan.cost_per_hour as f64 / best as f64);
    }
    eprintln!("optimal on {optimal} of {cases}; worst ratio to the optimum {worst:.3}");
    assert!(
        optimal * 10 >= cases * 7,
        "optimal on only {optimal} of {cases}"
    );
    assert!(worst <= 1.25, "a plan costs {worst:.3} × the optimum");
}

/// Under a drain budget smaller than the cluster, the drain plan is the one that saves; it must
/// stay valid when pending pods were first placed on a node it then drains (they move too).
#[test]
fn a_small_drain_budget_still_saves_on_a_loosely_packed_cluster() {
    let policy = OptimizerPolicy::default();
    let shape = ClusterShape {
        instance_types: 60,
        nodes: 300,
        pods: 3000,
        zones: 3,
        constrained_share: 0.02,
        pdbs: 0,
    };
    for seed in 1..=5 {
        let SyntheticCluster {
            snapshot,
            offerings,
        } = cluster(seed, &shape);
        let plan = consolidate(&snapshot, &offerings, &policy)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        check_plan(&snapshot, &offerings, &policy, &plan)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(
            plan.drained_nodes.len() <= policy.max_drained_nodes as usize,
            "seed {seed}: {} drained",
            plan.drained_nodes.len()
        );
        assert!(
            plan.cost_per_hour < plan.current_cost_per_hour,
            "seed {seed}: {} kept the cluster as it is",
            plan.strategy
        );
    }
}

/// A snapshot whose current placement breaks its own constraints (a bare pod, which may not
/// move, asking more than its node has) has no valid plan: that is the input's fault, said as
/// such and naming why, not an internal error.
#[test]
fn a_snapshot_that_overcommits_a_pinned_node_is_refused_as_invalid() {
    let (mut snapshot, offerings, bare, node) = with_a_bare_pod(11, 4, 4, 12);
    let allocatable = snapshot
        .nodes
        .iter()
        .find(|n| n.name == node)
        .map(|n| n.allocatable.pods)
        .unwrap_or_else(|| panic!("its node"));
    snapshot.pods[bare].requests.pods = allocatable + 1;
    let error = consolidate(&snapshot, &offerings, &unlimited())
        .err()
        .unwrap_or_else(|| panic!("a plan for an impossible snapshot"));
    assert_eq!(
        error.kind(),
        onmemos_core::ErrorKind::InvalidInput,
        "{error}"
    );
    assert!(error.to_string().contains("over capacity"), "{error}");
}
