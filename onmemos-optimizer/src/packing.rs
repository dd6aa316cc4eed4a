//! Bin packing and consolidation: the cheapest set of nodes for a cluster's pods, the nodes to
//! drain and remove, within PDBs and a disruption budget, reported against a lower bound.
//!
//! The problem is multi-resource variable-sized bin packing with costs: bins are the existing
//! nodes (each usable once, at its price) and the offerings (as many as wanted); items are the
//! pods, each needing CPU, memory, GPUs and a pod slot on a node it may run on (node selector,
//! taints). Daemonset pods are overhead on every node they run on.
//!
//! 1. **Lower bound.** The LP relaxation over the four resource sums, solved in its dual (four
//!    variables `λ`, one price per unit of resource) by projected subgradient ascent; every
//!    feasible `λ` gives a valid bound, so the bound is valid however far the ascent got.
//! 2. **Plans.** The same `λ` price the pods (`λ·requests`) and the bins: a pod's value, a
//!    bin's value per cost. Four plans are built, each checked against every constraint, and
//!    the cheapest valid one is returned:
//!    - *keep*: nothing moves; unscheduled pods are placed;
//!    - *drain*: nodes in order of least value per cost are drained when their pods fit in the
//!      free space elsewhere (cluster-autoscaler style), then the next-worst `k` nodes are
//!      replaced by new ones for several `k`, all within the budget and the PDBs;
//!    - *repack*: every movable pod placed afresh, value-decreasing; each new bin of the kind
//!      the LP would buy that the next pods fill best, filled at once with the pods whose
//!      shape best matches its room; then emptied bins closed and every bin downsized;
//!    - *first-fit decreasing* (the textbook baseline, also reported on its own).

// Resource vectors are fixed arrays indexed in parallel (`used[r] + need[r] <= cap[r]`);
// an index reads better there than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::collections::{BTreeMap, HashMap};

use onmemos_core::error::{Error, Result};
use onmemos_core::model::MicroCredits;
use onmemos_core::ports::optimizer::{
    CapacityType, ClusterSnapshot, NodeOffering, OptimizerPolicy, PodInfo, ResourceVector, Taint,
    Toleration,
};
use serde::{Deserialize, Serialize};

/// Resources as an array: cpu millis, memory bytes, GPUs, pods.
type Res = [u64; 4];

fn res(v: &ResourceVector) -> Res {
    [
        v.cpu_millis,
        v.memory_bytes,
        u64::from(v.gpus),
        u64::from(v.pods),
    ]
}

fn add(a: &mut Res, b: &Res) {
    for i in 0..4 {
        a[i] += b[i];
    }
}

fn fits(used: &Res, need: &Res, cap: &Res) -> bool {
    (0..4).all(|i| used[i] + need[i] <= cap[i])
}

fn value(lambda: &[f64; 4], r: &Res) -> f64 {
    (0..4).map(|i| lambda[i] * r[i] as f64).sum()
}

/// Where a pod ends up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRef {
    /// An existing node, by name.
    Existing(String),
    /// A new node: an index into [`PackingPlan::new_nodes`].
    New(usize),
}

/// A node the plan buys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewNode {
    /// Index of the offering it is bought from.
    pub offering: usize,
    /// Its instance type.
    pub instance_type: String,
    /// Its zone.
    pub zone: String,
    /// Spot or on-demand.
    pub capacity_type: CapacityType,
    /// Its price per hour.
    pub price_per_hour: MicroCredits,
}

/// A consolidation plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackingPlan {
    /// Which construction produced it (`keep`, `drain`, `repack`, `first-fit-decreasing`).
    pub strategy: String,
    /// Existing nodes to drain and remove.
    pub drained_nodes: Vec<String>,
    /// Nodes to buy.
    pub new_nodes: Vec<NewNode>,
    /// Where every placed non-daemonset pod runs, by pod name.
    pub placements: BTreeMap<String, NodeRef>,
    /// Pods that must move (were running elsewhere).
    pub evictions: usize,
    /// Pods that fit on no node at all.
    pub unplaceable: Vec<String>,
    /// Cost of the cluster after the plan, per hour.
    pub cost_per_hour: MicroCredits,
    /// Cost of the cluster now, per hour.
    pub current_cost_per_hour: MicroCredits,
    /// No placement of these pods costs less than this, per hour.
    pub lower_bound_per_hour: MicroCredits,
}

/// A bin during construction.
#[derive(Debug, Clone)]
struct Bin {
    cap: Res,
    used: Res,
    price: MicroCredits,
    class: usize,
    source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Existing(usize),
    Offering(usize),
}

/// A pod to place.
#[derive(Debug, Clone)]
struct Item {
    pod: usize,
    need: Res,
    group: usize,
    value: f64,
}

/// The problem, indexed once.
#[derive(Clone)]
struct Problem<'a> {
    snapshot: &'a ClusterSnapshot,
    offerings: &'a [NodeOffering],
    node_index: HashMap<&'a str, usize>,
    /// Per existing node: allocatable minus its daemonset pods.
    node_cap: Vec<Res>,
    /// Per offering: allocatable minus the daemonsets that would run there.
    offering_cap: Vec<Res>,
    node_class: Vec<usize>,
    offering_class: Vec<usize>,
    pod_group: Vec<usize>,
    /// compatible[group][class].
    compatible: Vec<Vec<bool>>,
    /// Non-daemonset pods that may be placed (scheduled or not).
    movable: Vec<bool>,
    /// PDB slack per owner.
    pdb_slack: HashMap<&'a str, u32>,
    lambda: [f64; 4],
    /// What a unit of each resource is worth when packing: `lambda` unless a variant says.
    weights: [f64; 4],
}

fn class_key(labels: &BTreeMap<String, String>, taints: &[Taint]) -> String {
    serde_json::to_string(&(labels, taints)).unwrap_or_default()
}

fn group_key(selector: &BTreeMap<String, String>, tolerations: &[Toleration]) -> String {
    serde_json::to_string(&(selector, tolerations)).unwrap_or_default()
}

fn intern(map: &mut HashMap<String, usize>, key: String) -> usize {
    let next = map.len();
    *map.entry(key).or_insert(next)
}

impl<'a> Problem<'a> {
    fn new(snapshot: &'a ClusterSnapshot, offerings: &'a [NodeOffering]) -> Result<Self> {
        let node_index: HashMap<&str, usize> = snapshot
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        if node_index.len() != snapshot.nodes.len() {
            return Err(Error::invalid("snapshot.nodes", "two nodes share a name"));
        }
        for pod in &snapshot.pods {
            if let Some(node) = &pod.node
                && !node_index.contains_key(node.as_str())
            {
                return Err(Error::invalid(
                    "snapshot.pods",
                    format!("pod {} runs on unknown node {node}", pod.name),
                ));
            }
        }

        let mut classes = HashMap::new();
        let node_class: Vec<usize> = snapshot
            .nodes
            .iter()
            .map(|n| intern(&mut classes, class_key(&n.labels, &n.taints)))
            .collect();
        let offering_class: Vec<usize> = offerings
            .iter()
            .map(|o| intern(&mut classes, class_key(&o.labels, &o.taints)))
            .collect();
        let mut groups = HashMap::new();
        let pod_group: Vec<usize> = snapshot
            .pods
            .iter()
            .map(|p| intern(&mut groups, group_key(&p.node_selector, &p.tolerations)))
            .collect();
        // One representative per class and per group, to fill the compatibility matrix.
        let mut class_repr: Vec<(BTreeMap<String, String>, Vec<Taint>)> =
            vec![Default::default(); classes.len()];
        for (n, &c) in snapshot.nodes.iter().zip(&node_class) {
            class_repr[c] = (n.labels.clone(), n.taints.clone());
        }
        for (o, &c) in offerings.iter().zip(&offering_class) {
            class_repr[c] = (o.labels.clone(), o.taints.clone());
        }
        let mut group_repr: Vec<Option<&PodInfo>> = vec![None; groups.len()];
        for (p, &g) in snapshot.pods.iter().zip(&pod_group) {
            group_repr[g].get_or_insert(p);
        }
        let compatible: Vec<Vec<bool>> = group_repr
            .iter()
            .map(|pod| {
                class_repr
                    .iter()
                    .map(|(labels, taints)| pod.is_some_and(|p| p.can_run_with(labels, taints)))
                    .collect()
            })
            .collect();

        let mut node_cap: Vec<Res> = snapshot.nodes.iter().map(|n| res(&n.allocatable)).collect();
        // Daemonsets: the largest request of each, to charge every node it may run on.
        let mut daemonsets: BTreeMap<&str, (Res, &PodInfo)> = BTreeMap::new();
        for pod in snapshot.pods.iter().filter(|p| p.daemonset) {
            let need = with_slot(&pod.requests);
            if let Some(node) = &pod.node {
                let cap = &mut node_cap[node_index[node.as_str()]];
                for i in 0..4 {
                    cap[i] = cap[i].saturating_sub(need[i]);
                }
            }
            let key = pod.owner.as_deref().unwrap_or(pod.name.as_str());
            let entry = daemonsets.entry(key).or_insert((need, pod));
            for i in 0..4 {
                entry.0[i] = entry.0[i].max(need[i]);
            }
        }
        let offering_cap: Vec<Res> = offerings
            .iter()
            .map(|o| {
                let mut cap = res(&o.allocatable);
                for (need, pod) in daemonsets.values() {
                    if pod.can_run_with(&o.labels, &o.taints) {
                        for i in 0..4 {
                            cap[i] = cap[i].saturating_sub(need[i]);
                        }
                    }
                }
                cap
            })
            .collect();

        let pdb_slack = snapshot
            .disruption_budgets
            .iter()
            .map(|b| (b.owner.as_str(), b.max_unavailable))
            .collect();
        // A pod that fits on no node at all is reported, not placed, and not counted in the
        // demand the lower bound covers.
        let movable = snapshot
            .pods
            .iter()
            .enumerate()
            .map(|(p, pod)| {
                let need = with_slot(&pod.requests);
                let group = pod_group[p];
                !pod.daemonset
                    && (pod.node.is_some()
                        || node_cap
                            .iter()
                            .zip(&node_class)
                            .any(|(cap, &c)| compatible[group][c] && fits(&[0; 4], &need, cap))
                        || offering_cap
                            .iter()
                            .zip(&offering_class)
                            .any(|(cap, &c)| compatible[group][c] && fits(&[0; 4], &need, cap)))
            })
            .collect();
        let problem = Self {
            snapshot,
            offerings,
            node_index,
            node_cap,
            offering_cap,
            node_class,
            offering_class,
            pod_group,
            compatible,
            movable,
            pdb_slack,
            lambda: [0.0; 4],
            weights: [0.0; 4],
        };
        Ok(problem)
    }

    /// The problem with its LP dual prices, which the plans and the bound need.
    fn priced(snapshot: &'a ClusterSnapshot, offerings: &'a [NodeOffering]) -> Result<Self> {
        let mut problem = Self::new(snapshot, offerings)?;
        problem.lambda = problem.dual_prices();
        problem.weights = problem.lambda;
        Ok(problem)
    }

    fn demand(&self) -> Res {
        let mut d = [0; 4];
        for (p, pod) in self.snapshot.pods.iter().enumerate() {
            if self.movable[p] {
                add(&mut d, &with_slot(&pod.requests));
            }
        }
        d
    }

    /// The LP dual `max λ·D − Σ_existing (λ·cap − c)⁺` subject to `λ·cap ≤ c` on every
    /// offering, by projected subgradient ascent from the best single-resource point.
    fn dual_prices(&self) -> [f64; 4] {
        let d = self.demand();
        let columns: Vec<(Res, f64, bool)> = self
            .node_cap
            .iter()
            .zip(&self.snapshot.nodes)
            .map(|(c, n)| (*c, n.price_per_hour as f64, true))
            .chain(
                self.offering_cap
                    .iter()
                    .zip(self.offerings)
                    .map(|(c, o)| (*c, o.price_per_hour as f64, false)),
            )
            .filter(|(c, _, _)| c.iter().any(|x| *x > 0))
            .collect();
        let project = |l: &mut [f64; 4]| {
            for x in l.iter_mut() {
                *x = x.max(0.0);
            }
            let mut scale: f64 = 1.0;
            for (cap, cost, existing) in &columns {
                let v = value(l, cap);
                if !existing && v > *cost {
                    scale = scale.min(cost / v);
                }
            }
            for x in l.iter_mut() {
                *x *= scale;
            }
        };
        let objective = |l: &[f64; 4]| {
            let mut g = value(l, &d);
            for (cap, cost, existing) in &columns {
                if *existing {
                    g -= (value(l, cap) - cost).max(0.0);
                }
            }
            g
        };
        let mut best = [0.0; 4];
        let mut best_value = 0.0;
        for r in 0..4 {
            if d[r] == 0 {
                continue;
            }
            let mut l = [0.0; 4];
            l[r] = columns
                .iter()
                .filter(|(c, _, _)| c[r] > 0)
                .map(|(c, cost, _)| cost / c[r] as f64)
                .fold(f64::INFINITY, f64::min);
            if !l[r].is_finite() {
                continue;
            }
            project(&mut l);
            let v = objective(&l);
            if v > best_value {
                best_value = v;
                best = l;
            }
        }
        // The exact optimum over CPU and memory alone, every column treated as unlimited (a
        // relaxation, so still a bound): the best vertex of the two-variable dual.
        let mut distinct: Vec<(Res, f64)> = Vec::new();
        {
            let mut cheapest: HashMap<Res, f64> = HashMap::new();
            for (cap, cost, _) in &columns {
                let c = cheapest.entry(*cap).or_insert(*cost);
                *c = c.min(*cost);
            }
            distinct.extend(cheapest);
            distinct.sort_by_key(|c| c.0);
        }
        let try_point = |l: [f64; 4], best: &mut [f64; 4], best_value: &mut f64| {
            if l.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return;
            }
            if distinct
                .iter()
                .all(|(cap, cost)| value(&l, cap) <= cost * (1.0 + 1e-12))
            {
                let v = objective(&l);
                if v > *best_value {
                    *best_value = v;
                    *best = l;
                }
            }
        };
        for (i, (a, ca)) in distinct.iter().enumerate() {
            for (b, cb) in &distinct[i + 1..] {
                let det = a[0] as f64 * b[1] as f64 - a[1] as f64 * b[0] as f64;
                if det.abs() < 1e-9 {
                    continue;
                }
                let l0 = (ca * b[1] as f64 - cb * a[1] as f64) / det;
                let l1 = (a[0] as f64 * cb - b[0] as f64 * ca) / det;
                try_point([l0, l1, 0.0, 0.0], &mut best, &mut best_value);
            }
        }
        // Subgradient ascent in coordinates scaled by demand, so every resource moves alike.
        let scale: [f64; 4] = std::array::from_fn(|r| if d[r] > 0 { d[r] as f64 } else { 1.0 });
        let mut l = best;
        let mut step = 0.05 * best_value.max(1.0);
        for _ in 0..400 {
            let mut grad: [f64; 4] = std::array::from_fn(|r| d[r] as f64);
            let binding: Vec<&(Res, f64, bool)> = columns
                .iter()
                .filter(|(cap, cost, existing)| *existing && value(&l, cap) > *cost)
                .collect();
            for (cap, _, _) in binding {
                for r in 0..4 {
                    grad[r] -= cap[r] as f64;
                }
            }
            let norm = (0..4)
                .map(|r| (grad[r] / scale[r]).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 {
                break;
            }
            for r in 0..4 {
                if d[r] > 0 {
                    l[r] += step * grad[r] / scale[r] / norm / scale[r];
                }
            }
            project(&mut l);
            let v = objective(&l);
            if v > best_value {
                best_value = v;
                best = l;
            } else {
                step *= 0.97;
            }
        }
        best
    }

    fn lower_bound(&self) -> MicroCredits {
        let d = self.demand();
        let mut g = value(&self.lambda, &d);
        for (cap, n) in self.node_cap.iter().zip(&self.snapshot.nodes) {
            g -= (value(&self.lambda, cap) - n.price_per_hour as f64).max(0.0);
        }
        // Floating-point slack: never claim more than the bound proves.
        (g * (1.0 - 1e-9)).floor().max(0.0) as MicroCredits
    }

    fn item(&self, p: usize) -> Item {
        let need = with_slot(&self.snapshot.pods[p].requests);
        Item {
            pod: p,
            need,
            group: self.pod_group[p],
            value: value(&self.weights, &need),
        }
    }

    /// An empty bin of an existing node or of an offering.
    fn bin(&self, source: Source) -> Bin {
        let (cap, price, class) = match source {
            Source::Existing(n) => (
                self.node_cap[n],
                self.snapshot.nodes[n].price_per_hour,
                self.node_class[n],
            ),
            Source::Offering(o) => (
                self.offering_cap[o],
                self.offerings[o].price_per_hour,
                self.offering_class[o],
            ),
        };
        Bin {
            cap,
            used: [0; 4],
            price,
            class,
            source,
        }
    }

    /// Whether a pod is bound to its node: a daemonset, a bare pod, or a PDB allowing none.
    fn pinned(&self, p: usize) -> bool {
        let pod = &self.snapshot.pods[p];
        pod.node.is_some()
            && (pod.daemonset
                || pod.owner.is_none()
                || pod
                    .owner
                    .as_deref()
                    .and_then(|o| self.pdb_slack.get(o))
                    .is_some_and(|s| *s == 0))
    }
}

fn with_slot(r: &ResourceVector) -> Res {
    let mut need = res(r);
    need[3] = need[3].max(1);
    need
}

/// A plan under construction: bins and where each pod sits.
#[derive(Clone)]
struct State {
    bins: Vec<Bin>,
    /// Bin of each pod, for placed non-daemonset pods.
    at: Vec<Option<usize>>,
    unplaceable: Vec<usize>,
}

impl State {
    /// Bins of existing nodes with their current pods; unscheduled pods left unplaced.
    fn current(problem: &Problem<'_>) -> Self {
        let mut bins: Vec<Bin> = (0..problem.snapshot.nodes.len())
            .map(|n| problem.bin(Source::Existing(n)))
            .collect();
        let mut at = vec![None; problem.snapshot.pods.len()];
        for (p, pod) in problem.snapshot.pods.iter().enumerate() {
            if let (true, Some(node)) = (problem.movable[p], &pod.node) {
                let b = problem.node_index[node.as_str()];
                add(&mut bins[b].used, &with_slot(&pod.requests));
                at[p] = Some(b);
            }
        }
        Self {
            bins,
            at,
            unplaceable: Vec::new(),
        }
    }

    /// Only the nodes that hold pinned pods, with those pods (open, and marked in `used`):
    /// where a fresh packing starts.
    fn pinned(problem: &Problem<'_>, used: &mut [bool]) -> (Self, Vec<bool>) {
        let mut state = Self {
            bins: Vec::new(),
            at: vec![None; problem.snapshot.pods.len()],
            unplaceable: Vec::new(),
        };
        let mut bin_of_node = HashMap::new();
        for (p, pod) in problem.snapshot.pods.iter().enumerate() {
            if let (true, false, Some(node)) = (problem.pinned(p), pod.daemonset, &pod.node) {
                let n = problem.node_index[node.as_str()];
                let b = *bin_of_node.entry(n).or_insert_with(|| {
                    used[n] = true;
                    state.bins.push(problem.bin(Source::Existing(n)));
                    state.bins.len() - 1
                });
                add(&mut state.bins[b].used, &with_slot(&pod.requests));
                state.at[p] = Some(b);
            }
        }
        let open = vec![true; state.bins.len()];
        (state, open)
    }

    fn cost(&self, open: &[bool]) -> MicroCredits {
        self.bins
            .iter()
            .zip(open)
            .filter(|(_, o)| **o)
            .map(|(b, _)| b.price)
            .sum()
    }
}

/// Items looked ahead when choosing the kind of a new bin.
const LOOKAHEAD: usize = 256;
/// How far above its LP value a kind of bin may cost and still be among the LP's choices.
const LP_SLACK: f64 = 0.03;

/// Places `items` (sorted by the caller) into `state`: best fit among open bins (the smallest
/// sum of squared leftover shares); else a new bin of the kind, among `candidates`, that the next items would fill with
/// the most value per cost.
fn place(
    problem: &Problem<'_>,
    state: &mut State,
    open: &mut Vec<bool>,
    items: &[Item],
    candidates: &[Source],
    used_existing: &mut [bool],
) {
    place_with(
        problem,
        state,
        open,
        items,
        candidates,
        used_existing,
        false,
    );
}

/// Items scanned when filling a new bin.
const FILL_WINDOW: usize = 1024;

/// [`place`]; with `fill`, every new bin is filled at once from the items to come, each time
/// with the item whose shape best matches the room left (the dot product of the two as shares
/// of the bin), so each bin gets a mix that leaves no resource stranded.
fn place_with(
    problem: &Problem<'_>,
    state: &mut State,
    open: &mut Vec<bool>,
    items: &[Item],
    candidates: &[Source],
    used_existing: &mut [bool],
    fill: bool,
) {
    let lambda = &problem.weights;
    // Offerings alike in capacity and class: only the cheapest matters.
    let mut kinds: Vec<Source> = Vec::new();
    let mut cheapest: HashMap<(Res, usize), usize> = HashMap::new();
    for &c in candidates {
        match c {
            Source::Existing(_) => kinds.push(c),
            Source::Offering(o) => {
                let key = (problem.offering_cap[o], problem.offering_class[o]);
                let price = problem.offerings[o].price_per_hour;
                match cheapest.get(&key) {
                    Some(&k) if problem.offerings[k].price_per_hour <= price => {}
                    _ => {
                        cheapest.insert(key, o);
                    }
                }
            }
        }
    }
    let mut offerings: Vec<usize> = cheapest.into_values().collect();
    offerings.sort_unstable();
    kinds.extend(offerings.into_iter().map(Source::Offering));
    // Each kind's empty bin, and whether the LP would buy it (reduced cost within `LP_SLACK`).
    let kinds: Vec<(Bin, bool)> = kinds
        .into_iter()
        .map(|c| {
            let bin = problem.bin(c);
            let near = value(&problem.lambda, &bin.cap) >= (1.0 - LP_SLACK) * bin.price as f64;
            (bin, near)
        })
        .collect();

    let mut done = vec![false; items.len()];
    for (i, it) in items.iter().enumerate() {
        if done[i] {
            continue;
        }
        let mut best: Option<(usize, f64)> = None;
        for (b, bin) in state.bins.iter().enumerate() {
            if !open[b]
                || !problem.compatible[it.group][bin.class]
                || !fits(&bin.used, &it.need, &bin.cap)
            {
                continue;
            }
            // Best fit by the leftover in every dimension at once (each as a share of the
            // bin), so no resource is left stranded.
            let leftover: f64 = (0..4)
                .filter(|&r| bin.cap[r] > 0)
                .map(|r| {
                    let left = (bin.cap[r] - bin.used[r] - it.need[r]) as f64 / bin.cap[r] as f64;
                    left * left
                })
                .sum();
            if best.is_none_or(|(_, l)| leftover < l) {
                best = Some((b, leftover));
            }
        }
        let target = match best {
            Some((b, _)) => Some(b),
            None => {
                let ahead = &items[i + 1..items.len().min(i + 1 + LOOKAHEAD)];
                let usable = |bin: &Bin| {
                    !matches!(bin.source, Source::Existing(n) if used_existing[n])
                        && problem.compatible[it.group][bin.class]
                        && fits(&[0; 4], &it.need, &bin.cap)
                };
                // The kinds the LP would buy; any kind only when none of those can take it.
                let mut pool: Vec<&Bin> = kinds
                    .iter()
                    .filter(|(bin, near)| *near && usable(bin))
                    .map(|(bin, _)| bin)
                    .collect();
                if pool.is_empty() {
                    pool = kinds
                        .iter()
                        .map(|(bin, _)| bin)
                        .filter(|bin| usable(bin))
                        .collect();
                }
                let mut choice: Option<(&Bin, f64)> = None;
                for bin in pool {
                    // Fill it greedily with the items to come.
                    let mut filled = it.need;
                    for next in ahead {
                        if problem.compatible[next.group][bin.class]
                            && fits(&filled, &next.need, &bin.cap)
                        {
                            add(&mut filled, &next.need);
                        }
                    }
                    let score = (value(lambda, &filled) + 1e-9) / (bin.price.max(1) as f64);
                    if choice.is_none_or(|(_, s)| score > s) {
                        choice = Some((bin, score));
                    }
                }
                choice.map(|(bin, _)| {
                    if let Source::Existing(n) = bin.source {
                        used_existing[n] = true;
                    }
                    state.bins.push(bin.clone());
                    open.push(true);
                    state.bins.len() - 1
                })
            }
        };
        let opened = best.is_none();
        match target {
            Some(b) => {
                add(&mut state.bins[b].used, &it.need);
                state.at[it.pod] = Some(b);
                if fill && opened {
                    fill_bin(problem, state, b, items, i + 1, &mut done);
                }
            }
            None => state.unplaceable.push(it.pod),
        }
    }
}

/// Fills bin `b` from `items[from..]` not yet `done`, best-aligned item first.
fn fill_bin(
    problem: &Problem<'_>,
    state: &mut State,
    b: usize,
    items: &[Item],
    from: usize,
    done: &mut [bool],
) {
    loop {
        let bin = &state.bins[b];
        let share: [f64; 4] = std::array::from_fn(|r| {
            if bin.cap[r] > 0 {
                1.0 / bin.cap[r] as f64
            } else {
                0.0
            }
        });
        let mut best: Option<(usize, f64)> = None;
        let mut scanned = 0;
        for j in from..items.len() {
            if done[j] {
                continue;
            }
            scanned += 1;
            if scanned > FILL_WINDOW {
                break;
            }
            let it = &items[j];
            if !problem.compatible[it.group][bin.class] || !fits(&bin.used, &it.need, &bin.cap) {
                continue;
            }
            let score: f64 = (0..4)
                .map(|r| {
                    it.need[r] as f64 * share[r] * (bin.cap[r] - bin.used[r]) as f64 * share[r]
                })
                .sum();
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((j, score));
            }
        }
        let Some((j, _)) = best else {
            return;
        };
        done[j] = true;
        add(&mut state.bins[b].used, &items[j].need);
        state.at[items[j].pod] = Some(b);
    }
}

fn sort_items(items: &mut [Item]) {
    items.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.pod.cmp(&b.pod)));
}

/// Consolidates the cluster within `policy`: the cheapest valid plan.
pub fn consolidate(
    snapshot: &ClusterSnapshot,
    offerings: &[NodeOffering],
    policy: &OptimizerPolicy,
) -> Result<PackingPlan> {
    let problem = Problem::priced(snapshot, offerings)?;
    // The repack is the long one: it runs on a thread of its own while the others run here.
    let plans = std::thread::scope(|scope| {
        let repack = scope.spawn(|| repack_plan(&problem));
        let (keep, drain, ffd) = (
            keep_plan(&problem),
            drain_plan(&problem, policy),
            ffd_plan(&problem),
        );
        // In this order: on equal cost the earlier plan wins.
        repack.join().map(|repack| [keep, drain, repack, ffd])
    })
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let mut best: Option<PackingPlan> = None;
    // The first plan keeps every running pod where it is: why it failed, if no plan passes.
    let keeping = plans[0].clone();
    for plan in plans {
        if check_with(&problem, policy, &plan).is_ok()
            && best.as_ref().is_none_or(|b| {
                (plan.unplaceable.len(), plan.cost_per_hour)
                    < (b.unplaceable.len(), b.cost_per_hour)
            })
        {
            best = Some(plan);
        }
    }
    // Keeping every running pod where it is, with the pending ones on new nodes or
    // unplaceable, is valid unless the snapshot's own placement breaks its constraints (a pod
    // that may not move asking more than its node has): then the input is at fault.
    best.ok_or_else(|| {
        let why = check_with(&problem, policy, &keeping)
            .err()
            .unwrap_or_default();
        Error::invalid(
            "snapshot",
            format!("the snapshot's current placement breaks its own constraints: {why}"),
        )
    })
}

/// The first-fit-decreasing baseline: every movable pod repacked, largest dominant share
/// first, into the first open bin it fits; new bins of the one offering that would cover the
/// whole demand cheapest alone (or, for a pod that cannot use it, the cheapest that fits).
pub fn first_fit_decreasing(
    snapshot: &ClusterSnapshot,
    offerings: &[NodeOffering],
) -> Result<PackingPlan> {
    let problem = Problem::priced(snapshot, offerings)?;
    Ok(ffd_plan(&problem))
}

/// The lower bound on the hourly cost of any placement of the snapshot's pods.
pub fn lower_bound(snapshot: &ClusterSnapshot, offerings: &[NodeOffering]) -> Result<MicroCredits> {
    Ok(Problem::priced(snapshot, offerings)?.lower_bound())
}

fn keep_plan(problem: &Problem<'_>) -> PackingPlan {
    let mut state = State::current(problem);
    let mut open = vec![true; state.bins.len()];
    let mut items: Vec<Item> = (0..problem.snapshot.pods.len())
        .filter(|&p| problem.movable[p] && problem.snapshot.pods[p].node.is_none())
        .map(|p| problem.item(p))
        .collect();
    sort_items(&mut items);
    let candidates: Vec<Source> = (0..problem.offerings.len()).map(Source::Offering).collect();
    let mut used = vec![true; problem.snapshot.nodes.len()];
    place(
        problem,
        &mut state,
        &mut open,
        &items,
        &candidates,
        &mut used,
    );
    finish(problem, "keep", &state, &open)
}

fn drain_plan(problem: &Problem<'_>, policy: &OptimizerPolicy) -> PackingPlan {
    let nodes = problem.snapshot.nodes.len();
    let budget = policy.max_drained_nodes as usize;
    let mut state = State::current(problem);
    let mut open = vec![true; state.bins.len()];
    let offerings: Vec<Source> = (0..problem.offerings.len()).map(Source::Offering).collect();
    let mut used = vec![true; nodes];
    // Unscheduled pods first, as in `keep`.
    let mut pending: Vec<Item> = (0..problem.snapshot.pods.len())
        .filter(|&p| problem.movable[p] && problem.snapshot.pods[p].node.is_none())
        .map(|p| problem.item(p))
        .collect();
    sort_items(&mut pending);
    place(
        problem, &mut state, &mut open, &pending, &offerings, &mut used,
    );

    // What each node holds now: its running pods and the pending ones just placed there, which
    // must move too if it is drained.
    let mut pods_on: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    let mut pinned = vec![false; nodes];
    for (p, pod) in problem.snapshot.pods.iter().enumerate() {
        if let Some(n) = state.at[p].filter(|&b| b < nodes)
            && problem.movable[p]
        {
            pods_on[n].push(p);
        }
        if let Some(node) = &pod.node
            && problem.pinned(p)
            && !pod.daemonset
        {
            pinned[problem.node_index[node.as_str()]] = true;
        }
    }
    // Least value per cost first.
    let mut order: Vec<usize> = (0..nodes).filter(|&n| !pinned[n]).collect();
    let efficiency = |n: usize| {
        let v: f64 = pods_on[n].iter().map(|&p| problem.item(p).value).sum();
        v / (problem.snapshot.nodes[n].price_per_hour.max(1) as f64)
    };
    order.sort_by(|&a, &b| efficiency(a).total_cmp(&efficiency(b)).then(a.cmp(&b)));

    let mut slack = problem.pdb_slack.clone();
    let pdb_allows = |slack: &HashMap<&str, u32>, pods: &[usize]| {
        let mut need: HashMap<&str, u32> = HashMap::new();
        for &p in pods {
            if let Some(owner) = problem.snapshot.pods[p].owner.as_deref() {
                *need.entry(owner).or_default() += 1;
            }
        }
        need.iter()
            .all(|(o, n)| slack.get(o).is_none_or(|s| *s >= *n))
    };
    let take = |slack: &mut HashMap<&str, u32>, pods: &[usize]| {
        for &p in pods {
            if let Some(owner) = problem.snapshot.pods[p].owner.as_deref()
                && let Some(s) = slack.get_mut(owner)
            {
                *s -= 1;
            }
        }
    };

    // Phase 1: drain nodes whose pods fit in the free space elsewhere.
    let mut drained = 0;
    let mut rest = Vec::new();
    for &n in &order {
        if drained >= budget {
            rest.push(n);
            continue;
        }
        if !pdb_allows(&slack, &pods_on[n]) {
            continue;
        }
        // Move the node's pods out in place; undo if any of them finds no room.
        open[n] = false;
        for &p in &pods_on[n] {
            for r in 0..4 {
                state.bins[n].used[r] -= problem.item(p).need[r];
            }
        }
        let mut items: Vec<Item> = pods_on[n].iter().map(|&p| problem.item(p)).collect();
        sort_items(&mut items);
        let before = state.unplaceable.len();
        place(problem, &mut state, &mut open, &items, &[], &mut used);
        if state.unplaceable.len() == before {
            take(&mut slack, &pods_on[n]);
            drained += 1;
        } else {
            state.unplaceable.truncate(before);
            for it in &items {
                if let Some(b) = state.at[it.pod].filter(|b| *b != n) {
                    for r in 0..4 {
                        state.bins[b].used[r] -= it.need[r];
                    }
                }
                add(&mut state.bins[n].used, &it.need);
                state.at[it.pod] = Some(n);
            }
            open[n] = true;
            rest.push(n);
        }
    }

    // Phase 2: replace the next-worst k nodes by new ones, for k doubling up to the budget.
    let room = budget.saturating_sub(drained);
    let mut best = (state.cost(&open), state.clone(), open.clone());
    let mut k = 1;
    while k <= room && room > 0 {
        let mut trial = state.clone();
        let mut trial_open = open.clone();
        let mut trial_slack = slack.clone();
        let mut items = Vec::new();
        let mut taken = 0;
        for &n in &rest {
            if taken == k {
                break;
            }
            if !pdb_allows(&trial_slack, &pods_on[n]) {
                continue;
            }
            take(&mut trial_slack, &pods_on[n]);
            trial_open[n] = false;
            for &p in &pods_on[n] {
                for r in 0..4 {
                    trial.bins[n].used[r] -= problem.item(p).need[r];
                }
                items.push(problem.item(p));
            }
            taken += 1;
        }
        sort_items(&mut items);
        place(
            problem,
            &mut trial,
            &mut trial_open,
            &items,
            &offerings,
            &mut used,
        );
        let cost = trial.cost(&trial_open);
        if trial.unplaceable.len() == state.unplaceable.len() && cost < best.0 {
            best = (cost, trial, trial_open);
        }
        if k == room {
            break;
        }
        k = (k * 2).min(room);
    }
    finish(problem, "drain", &best.1, &best.2)
}

/// The repack under several weightings of the resources (the LP's prices, each resource's
/// cheapest unit price alone, and their sum): the cheapest wins.
fn repack_plan(problem: &Problem<'_>) -> PackingPlan {
    let d = problem.demand();
    let unit = |r: usize| {
        problem
            .offering_cap
            .iter()
            .zip(problem.offerings)
            .filter(|(c, _)| c[r] > 0)
            .map(|(c, o)| o.price_per_hour as f64 / c[r] as f64)
            .fold(f64::INFINITY, f64::min)
    };
    let cpu = if d[0] > 0 && unit(0).is_finite() {
        unit(0)
    } else {
        0.0
    };
    let memory = if d[1] > 0 && unit(1).is_finite() {
        unit(1)
    } else {
        0.0
    };
    let variants = [
        problem.lambda,
        [cpu, 0.0, 0.0, 0.0],
        [0.0, memory, 0.0, 0.0],
        [cpu, memory, 0.0, 0.0],
    ];
    let mut best: Option<PackingPlan> = None;
    for (i, weights) in variants.iter().copied().enumerate() {
        if weights.iter().all(|w| *w == 0.0) || variants[..i].contains(&weights) {
            continue;
        }
        let mut variant = problem.clone();
        variant.weights = weights;
        let plan = repack_with(&variant);
        if best.as_ref().is_none_or(|b| {
            (plan.unplaceable.len(), plan.cost_per_hour) < (b.unplaceable.len(), b.cost_per_hour)
        }) {
            best = Some(plan);
        }
    }
    best.unwrap_or_else(|| repack_with(problem))
}

fn repack_with(problem: &Problem<'_>) -> PackingPlan {
    let nodes = problem.snapshot.nodes.len();
    let mut used = vec![false; nodes];
    let (mut state, mut open) = State::pinned(problem, &mut used);
    let mut items: Vec<Item> = (0..problem.snapshot.pods.len())
        .filter(|&p| problem.movable[p] && !problem.pinned(p))
        .map(|p| problem.item(p))
        .collect();
    sort_items(&mut items);
    let candidates: Vec<Source> = (0..nodes)
        .map(Source::Existing)
        .chain((0..problem.offerings.len()).map(Source::Offering))
        .collect();
    place_with(
        problem,
        &mut state,
        &mut open,
        &items,
        &candidates,
        &mut used,
        true,
    );
    improve(problem, &mut state, &mut open, &candidates, &mut used);
    finish(problem, "repack", &state, &open)
}

/// Local improvement of a fresh packing: empty the bins of least value per cost into the
/// others where they fit, then give every bin the cheapest kind that holds its load.
fn improve(
    problem: &Problem<'_>,
    state: &mut State,
    open: &mut Vec<bool>,
    candidates: &[Source],
    used_existing: &mut [bool],
) {
    let members = |state: &State| {
        let mut pods: Vec<Vec<usize>> = vec![Vec::new(); state.bins.len()];
        let mut pinned = vec![false; state.bins.len()];
        for (p, at) in state.at.iter().enumerate() {
            if let Some(b) = *at {
                if problem.pinned(p) {
                    pinned[b] = true;
                } else {
                    pods[b].push(p);
                }
            }
        }
        (pods, pinned)
    };
    // 1. Close bins whose pods fit elsewhere, least value per cost first (moved in place,
    //    undone when one finds no room).
    let (mut pods_of, pinned) = members(state);
    let mut order: Vec<usize> = (0..state.bins.len()).filter(|&b| open[b]).collect();
    let density = |bin: &Bin| value(&problem.weights, &bin.used) / (bin.price.max(1) as f64);
    order.sort_by(|&a, &b| density(&state.bins[a]).total_cmp(&density(&state.bins[b])));
    for b in order {
        if pinned[b] {
            continue;
        }
        let mut items: Vec<Item> = pods_of[b].iter().map(|&p| problem.item(p)).collect();
        sort_items(&mut items);
        open[b] = false;
        let load = state.bins[b].used;
        state.bins[b].used = [0; 4];
        let before = state.unplaceable.len();
        place(problem, state, open, &items, &[], used_existing);
        if state.unplaceable.len() == before {
            for it in &items {
                if let Some(to) = state.at[it.pod] {
                    pods_of[to].push(it.pod);
                }
            }
            pods_of[b].clear();
            if let Source::Existing(n) = state.bins[b].source {
                used_existing[n] = false;
            }
        } else {
            state.unplaceable.truncate(before);
            for it in &items {
                if let Some(to) = state.at[it.pod].filter(|to| *to != b) {
                    for r in 0..4 {
                        state.bins[to].used[r] -= it.need[r];
                    }
                }
                state.at[it.pod] = Some(b);
            }
            state.bins[b].used = load;
            open[b] = true;
        }
    }
    // 2. The cheapest kind of bin for each bin's load.
    let kinds: Vec<Bin> = candidates.iter().map(|&c| problem.bin(c)).collect();
    for b in 0..state.bins.len() {
        if !open[b] || pinned[b] {
            continue;
        }
        let groups: Vec<usize> = pods_of[b].iter().map(|&p| problem.pod_group[p]).collect();
        let load = state.bins[b].used;
        let mut best: Option<&Bin> = None;
        for bin in &kinds {
            if bin.price < best.map_or(state.bins[b].price, |k| k.price)
                && !matches!(bin.source, Source::Existing(n) if used_existing[n])
                && fits(&[0; 4], &load, &bin.cap)
                && groups.iter().all(|&g| problem.compatible[g][bin.class])
            {
                best = Some(bin);
            }
        }
        if let Some(mut bin) = best.cloned() {
            if let Source::Existing(n) = state.bins[b].source {
                used_existing[n] = false;
            }
            if let Source::Existing(n) = bin.source {
                used_existing[n] = true;
            }
            bin.used = load;
            state.bins[b] = bin;
        }
    }
}

fn ffd_plan(problem: &Problem<'_>) -> PackingPlan {
    let d = problem.demand();
    // The offering that alone covers the demand cheapest.
    let alone = |o: usize| {
        let cap = problem.offering_cap[o];
        let count = (0..4)
            .filter(|&r| d[r] > 0)
            .map(|r| {
                if cap[r] == 0 {
                    f64::INFINITY
                } else {
                    d[r] as f64 / cap[r] as f64
                }
            })
            .fold(0.0, f64::max);
        count * problem.offerings[o].price_per_hour as f64
    };
    let mut by_price: Vec<usize> = (0..problem.offerings.len()).collect();
    by_price.sort_by(|&a, &b| alone(a).total_cmp(&alone(b)).then(a.cmp(&b)));
    let largest: Res = std::array::from_fn(|r| {
        problem
            .offering_cap
            .iter()
            .chain(&problem.node_cap)
            .map(|c| c[r])
            .max()
            .unwrap_or(1)
            .max(1)
    });
    let dominant = |need: &Res| {
        (0..4)
            .map(|r| need[r] as f64 / largest[r] as f64)
            .fold(0.0, f64::max)
    };
    let mut used = vec![false; problem.snapshot.nodes.len()];
    let (mut state, mut open) = State::pinned(problem, &mut used);
    let mut items: Vec<(f64, Item)> = (0..problem.snapshot.pods.len())
        .filter(|&p| problem.movable[p] && !problem.pinned(p))
        .map(|p| {
            let it = problem.item(p);
            (dominant(&it.need), it)
        })
        .collect();
    items.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.pod.cmp(&b.1.pod)));
    for (_, it) in items {
        let first = state.bins.iter().position(|bin| {
            problem.compatible[it.group][bin.class] && fits(&bin.used, &it.need, &bin.cap)
        });
        let b = first.or_else(|| {
            by_price
                .iter()
                .find(|&&o| {
                    problem.compatible[it.group][problem.offering_class[o]]
                        && fits(&[0; 4], &it.need, &problem.offering_cap[o])
                })
                .map(|&o| {
                    state.bins.push(problem.bin(Source::Offering(o)));
                    open.push(true);
                    state.bins.len() - 1
                })
        });
        match b {
            Some(b) => {
                add(&mut state.bins[b].used, &it.need);
                state.at[it.pod] = Some(b);
            }
            None => state.unplaceable.push(it.pod),
        }
    }
    finish(problem, "first-fit-decreasing", &state, &open)
}

/// Turns a final state into a plan: open bins are kept or bought, closed or unused existing
/// nodes are drained.
fn finish(problem: &Problem<'_>, strategy: &str, state: &State, open: &[bool]) -> PackingPlan {
    let snapshot = problem.snapshot;
    let mut kept = vec![false; snapshot.nodes.len()];
    let mut new_nodes = Vec::new();
    let mut refs = Vec::with_capacity(state.bins.len());
    for (bin, &is_open) in state.bins.iter().zip(open) {
        refs.push(match (bin.source, is_open) {
            (Source::Existing(n), true) => {
                kept[n] = true;
                Some(NodeRef::Existing(snapshot.nodes[n].name.clone()))
            }
            (Source::Offering(o), true) if bin.used[3] > 0 => {
                let offering = &problem.offerings[o];
                new_nodes.push(NewNode {
                    offering: o,
                    instance_type: offering.instance_type.clone(),
                    zone: offering.zone.clone(),
                    capacity_type: offering.capacity_type,
                    price_per_hour: offering.price_per_hour,
                });
                Some(NodeRef::New(new_nodes.len() - 1))
            }
            _ => None,
        });
    }
    let mut placements = BTreeMap::new();
    let mut evictions = 0;
    for (p, pod) in snapshot.pods.iter().enumerate() {
        if let Some(Some(target)) = state.at[p].map(|b| refs[b].clone()) {
            if matches!(&pod.node, Some(n) if target != NodeRef::Existing(n.clone())) {
                evictions += 1;
            }
            placements.insert(pod.name.clone(), target);
        }
    }
    // An existing node is kept only if it is open and either holds a pod or was kept open.
    let drained_nodes: Vec<String> = snapshot
        .nodes
        .iter()
        .zip(&kept)
        .filter(|(_, k)| !**k)
        .map(|(n, _)| n.name.clone())
        .collect();
    let cost_per_hour = snapshot
        .nodes
        .iter()
        .zip(&kept)
        .filter(|(_, k)| **k)
        .map(|(n, _)| n.price_per_hour)
        .sum::<MicroCredits>()
        + new_nodes
            .iter()
            .map(|n| n.price_per_hour)
            .sum::<MicroCredits>();
    let mut unplaceable: Vec<String> = state
        .unplaceable
        .iter()
        .copied()
        .chain(
            (0..snapshot.pods.len())
                .filter(|&p| !snapshot.pods[p].daemonset && !problem.movable[p]),
        )
        .map(|p| snapshot.pods[p].name.clone())
        .collect();
    unplaceable.sort();
    PackingPlan {
        strategy: strategy.to_owned(),
        drained_nodes,
        new_nodes,
        placements,
        evictions,
        unplaceable,
        cost_per_hour,
        current_cost_per_hour: snapshot.nodes.iter().map(|n| n.price_per_hour).sum(),
        lower_bound_per_hour: problem.lower_bound(),
    }
}

/// Checks a plan against every constraint: each non-daemonset pod placed once on a node it may
/// run on (or reported unplaceable because it fits on no node at all), capacities with
/// daemonset overhead respected, pinned pods unmoved, the disruption budget and every PDB kept,
/// and the reported cost right. Returns what is violated.
pub fn check_plan(
    snapshot: &ClusterSnapshot,
    offerings: &[NodeOffering],
    policy: &OptimizerPolicy,
    plan: &PackingPlan,
) -> std::result::Result<(), String> {
    let problem = Problem::new(snapshot, offerings).map_err(|e| e.to_string())?;
    check_with(&problem, policy, plan)
}

fn check_with(
    problem: &Problem<'_>,
    policy: &OptimizerPolicy,
    plan: &PackingPlan,
) -> std::result::Result<(), String> {
    let snapshot = problem.snapshot;
    let drained: std::collections::HashSet<&str> =
        plan.drained_nodes.iter().map(String::as_str).collect();
    if drained.len() > policy.max_drained_nodes as usize {
        return Err(format!(
            "{} nodes drained, budget {}",
            drained.len(),
            policy.max_drained_nodes
        ));
    }
    let mut used_existing = vec![[0u64; 4]; snapshot.nodes.len()];
    let mut used_new = vec![[0u64; 4]; plan.new_nodes.len()];
    let mut evicted: HashMap<&str, u32> = HashMap::new();
    let mut evictions = 0;
    for (p, pod) in snapshot.pods.iter().enumerate() {
        if pod.daemonset {
            continue;
        }
        let need = with_slot(&pod.requests);
        let Some(target) = plan.placements.get(&pod.name) else {
            if !plan.unplaceable.contains(&pod.name) {
                return Err(format!("pod {} is not placed", pod.name));
            }
            if pod.node.is_some() {
                return Err(format!("running pod {} left without a node", pod.name));
            }
            continue;
        };
        let (cap, used, class) = match target {
            NodeRef::Existing(name) => {
                let n = *problem
                    .node_index
                    .get(name.as_str())
                    .ok_or_else(|| format!("pod {} placed on unknown node {name}", pod.name))?;
                if drained.contains(name.as_str()) {
                    return Err(format!("pod {} placed on drained node {name}", pod.name));
                }
                (
                    problem.node_cap[n],
                    &mut used_existing[n],
                    problem.node_class[n],
                )
            }
            NodeRef::New(i) => {
                let node = plan
                    .new_nodes
                    .get(*i)
                    .ok_or_else(|| format!("pod {} placed on unknown new node {i}", pod.name))?;
                (
                    problem.offering_cap[node.offering],
                    &mut used_new[*i],
                    problem.offering_class[node.offering],
                )
            }
        };
        if !problem.compatible[problem.pod_group[p]][class] {
            return Err(format!("pod {} on a node it may not run on", pod.name));
        }
        add(used, &need);
        if !fits(&[0; 4], used, &cap) {
            return Err(format!("node of pod {} over capacity", pod.name));
        }
        if let Some(node) = &pod.node
            && *target != NodeRef::Existing(node.clone())
        {
            if problem.pinned(p) {
                return Err(format!("pinned pod {} moved", pod.name));
            }
            evictions += 1;
            if let Some(owner) = pod.owner.as_deref() {
                *evicted.entry(owner).or_default() += 1;
            }
        }
    }
    for (owner, n) in &evicted {
        if let Some(slack) = problem.pdb_slack.get(owner)
            && n > slack
        {
            return Err(format!(
                "{n} pods of {owner} evicted, its PDB allows {slack}"
            ));
        }
    }
    if evictions != plan.evictions {
        return Err(format!(
            "plan reports {} evictions, counted {evictions}",
            plan.evictions
        ));
    }
    let cost: MicroCredits = snapshot
        .nodes
        .iter()
        .filter(|n| !drained.contains(n.name.as_str()))
        .map(|n| n.price_per_hour)
        .sum::<MicroCredits>()
        + plan
            .new_nodes
            .iter()
            .map(|n| n.price_per_hour)
            .sum::<MicroCredits>();
    if cost != plan.cost_per_hour {
        return Err(format!(
            "plan reports cost {}, counted {cost}",
            plan.cost_per_hour
        ));
    }
    Ok(())
}
