//! Spot placement: for a workload, the spot pools and the spot/on-demand mix that maximise the
//! expected saving under the policy's risk bound, spread over enough instance types and zones.
//!
//! - A **pool** is a spot offering (type, zone). A replica costs its *dominant share* of a node:
//!   the node's price times the largest fraction of any resource (CPU, memory, GPUs, a pod slot)
//!   one replica takes. The rest of the node is left to other pods, which is bin packing's job.
//! - The **baseline** is every replica on the cheapest on-demand offering that admits it.
//! - A pool's **risk** `r` is the risk model's expected monthly interruption probability,
//!   given the pool's Spot Advisor band. It is **eligible** when it admits the replica (fit,
//!   node selector, taints), `r` is within the bound (the workload's, if tighter than the
//!   policy's), and it is cheaper than the baseline.
//! - A spot replica's **expected saving** is `(baseline − cost) × (1 − r)`: an interrupted
//!   replica is counted as losing its whole month's saving, so risk costs money.
//! - At most `floor(replicas × max_spot_share)` replicas go to spot, over
//!   `k = max(min_instance_types, min_zones)` pools that together cover the required types and
//!   zones. Pools are taken greedily by expected saving per replica, each only if the types and
//!   zones still missing can be covered by the slots left (a bipartite matching of new types to
//!   new zones decides it exactly). Replicas are spread evenly over the pools, the better
//!   pools taking the remainder, so no pool carries more than its share of the risk.
//! - The rest stay on the baseline on-demand offering. Workloads that do not tolerate
//!   interruption, or whose spot replicas cannot satisfy the diversity rules, stay on-demand, and
//!   the plan says why.

use std::collections::{BTreeMap, BTreeSet};

use onmemos_core::error::{Error, Result};
use onmemos_core::model::MicroCredits;
use onmemos_core::ports::optimizer::{
    CapacityType, NodeOffering, OptimizerPolicy, Recommendation, RecommendationKind,
    ResourceVector, WorkloadInfo,
};
use serde::{Deserialize, Serialize};

use crate::catalog::OperatingSystem;
use crate::risk::{PoolFeatures, RiskModel, family_generation};

/// Hours in the 30-day month savings are quoted for.
pub const HOURS_PER_MONTH: f64 = 720.0;

/// Checks that a policy's numbers are meaningful.
pub fn validate_policy(policy: &OptimizerPolicy) -> Result<()> {
    let unit = |field: &str, v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(Error::invalid(
                format!("policy.{field}"),
                format!("{field} must be in [0, 1], got {v}"),
            ))
        }
    };
    unit("max_spot_share", policy.max_spot_share)?;
    unit("max_interruption_risk", policy.max_interruption_risk)
}

/// The largest fraction of `capacity` one replica of `requests` takes (a pod slot included),
/// or `None` when it does not fit.
pub fn dominant_share(requests: &ResourceVector, capacity: &ResourceVector) -> Option<f64> {
    let pairs = [
        (requests.cpu_millis as f64, capacity.cpu_millis as f64),
        (requests.memory_bytes as f64, capacity.memory_bytes as f64),
        (f64::from(requests.gpus), f64::from(capacity.gpus)),
        (f64::from(requests.pods.max(1)), f64::from(capacity.pods)),
    ];
    let mut share: f64 = 0.0;
    for (need, cap) in pairs {
        if need > cap {
            return None;
        }
        if need > 0.0 {
            share = share.max(need / cap);
        }
    }
    Some(share)
}

/// What a spot offering's risk depends on, of the offering itself.
type RiskKey<'a> = (&'a str, &'a str, Option<u8>, MicroCredits);

fn risk_key(o: &NodeOffering) -> RiskKey<'_> {
    (
        o.instance_type.as_str(),
        o.zone.as_str(),
        o.interruption_band,
        o.price_per_hour,
    )
}

/// Interruption risk of spot offerings, from the risk model and what the offerings themselves
/// say: their band, their saving over the same type on demand, and the bands of other types of
/// the same family and generation in the same zone.
#[derive(Debug, Clone)]
pub struct OfferingRisk<'a> {
    model: &'a RiskModel,
    region: String,
    on_demand: BTreeMap<(&'a str, &'a str), MicroCredits>,
    family_bands: BTreeMap<(String, &'a str), Vec<(&'a str, u8)>>,
    /// Each spot offering's probability, computed once for every workload.
    known: BTreeMap<RiskKey<'a>, f64>,
}

impl<'a> OfferingRisk<'a> {
    /// Indexes `offerings` of `region` (the snapshot's; empty when unknown) for the model.
    pub fn new(model: &'a RiskModel, region: &str, offerings: &'a [NodeOffering]) -> Self {
        let mut on_demand = BTreeMap::new();
        let mut family_bands: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for o in offerings {
            match (o.capacity_type, o.interruption_band) {
                (CapacityType::OnDemand, _) => {
                    on_demand.insert(
                        (o.instance_type.as_str(), o.zone.as_str()),
                        o.price_per_hour,
                    );
                }
                (CapacityType::Spot, Some(band)) => {
                    let key = (family_generation(&o.instance_type), o.zone.as_str());
                    let pools = family_bands.entry(key).or_default();
                    if !pools.iter().any(|(t, _)| *t == o.instance_type) {
                        pools.push((o.instance_type.as_str(), band));
                    }
                }
                (CapacityType::Spot, None) => {}
            }
        }
        let mut risk = Self {
            model,
            region: region.to_owned(),
            on_demand,
            family_bands,
            known: BTreeMap::new(),
        };
        let known = offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::Spot)
            .map(|o| (risk_key(o), risk.compute(o)))
            .collect();
        risk.known = known;
        risk
    }

    /// The features the model is given for a spot offering.
    pub fn features(&self, o: &NodeOffering) -> PoolFeatures {
        let savings_pct = self
            .on_demand
            .get(&(o.instance_type.as_str(), o.zone.as_str()))
            .filter(|&&od| od > 0)
            .map(|&od| 100.0 * (1.0 - o.price_per_hour as f64 / od as f64));
        let family = (family_generation(&o.instance_type), o.zone.as_str());
        let family_here = self.model.neighbour_feature(
            self.family_bands
                .get(&family)
                .into_iter()
                .flatten()
                .filter(|(t, _)| *t != o.instance_type)
                .map(|(_, b)| *b),
        );
        PoolFeatures {
            instance_type: o.instance_type.clone(),
            vcpus: u32::try_from(o.allocatable.cpu_millis.div_ceil(1000)).unwrap_or(u32::MAX),
            region: self.region.clone(),
            os: OperatingSystem::Linux,
            savings_pct,
            price_volatility: None,
            type_elsewhere: None,
            family_here,
        }
    }

    /// The expected monthly interruption probability of a spot offering.
    pub fn probability(&self, o: &NodeOffering) -> f64 {
        self.known
            .get(&risk_key(o))
            .copied()
            .unwrap_or_else(|| self.compute(o))
    }

    fn compute(&self, o: &NodeOffering) -> f64 {
        self.model
            .interruption_probability(&self.features(o), o.interruption_band)
    }
}

/// One pool of a placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolChoice {
    /// Instance type.
    pub instance_type: String,
    /// Zone.
    pub zone: String,
    /// Spot or on-demand.
    pub capacity_type: CapacityType,
    /// Replicas placed there.
    pub replicas: u32,
    /// Cost of one replica there per hour (its dominant share of the node's price).
    pub replica_cost_per_hour: f64,
    /// Expected monthly interruption probability (0 on demand).
    pub interruption_probability: f64,
    /// Expected monthly saving of one replica there against the baseline, in micro-credits.
    pub expected_monthly_saving_per_replica: f64,
}

/// Why a spot offering was not used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    /// A replica does not fit on such a node.
    DoesNotFit,
    /// The node's labels or taints do not admit the replicas.
    NotAdmitted,
    /// Its interruption probability is above the bound.
    TooRisky {
        /// The pool's probability.
        risk: f64,
        /// The bound.
        bound: f64,
    },
    /// A replica costs at least the baseline there.
    NoSaving {
        /// Cost of a replica there per hour.
        cost: f64,
        /// The baseline's per hour.
        baseline: f64,
    },
    /// Eligible, but the chosen pools save more (or it would not add a type or zone still
    /// missing).
    Outranked {
        /// Its expected monthly saving per replica.
        saving: f64,
        /// The lowest of the chosen pools'.
        worst_chosen: f64,
    },
}

/// A spot offering that was not used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// Instance type.
    pub instance_type: String,
    /// Zone.
    pub zone: String,
    /// Why.
    #[serde(flatten)]
    pub why: Rejection,
}

/// The placement of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementPlan {
    /// The workload.
    pub workload: String,
    /// Its replicas.
    pub replicas: u32,
    /// The baseline: the cheapest on-demand offering that admits a replica.
    pub baseline: PoolChoice,
    /// Spot pools chosen (empty when it stays on demand).
    pub spot: Vec<PoolChoice>,
    /// Replicas left on the baseline offering.
    pub on_demand_replicas: u32,
    /// Expected monthly saving against the baseline, in micro-credits.
    pub monthly_savings: MicroCredits,
    /// Saving if no replica were ever interrupted, in micro-credits.
    pub gross_monthly_savings: MicroCredits,
    /// Probability that at least one spot replica is interrupted in a month.
    pub risk: f64,
    /// Why it stays on demand, when it does.
    pub on_demand_reason: Option<String>,
    /// The spot offerings not used.
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Clone)]
struct Pool<'a> {
    offering: &'a NodeOffering,
    cost: f64,
    risk: f64,
    saving: f64,
}

/// Places `workload` on `offerings` under `policy`; `None` when no on-demand offering admits a
/// replica (there is no baseline to save against).
pub fn place(
    workload: &WorkloadInfo,
    offerings: &[NodeOffering],
    policy: &OptimizerPolicy,
    risk: &OfferingRisk<'_>,
) -> Result<Option<PlacementPlan>> {
    validate_policy(policy)?;
    if let Some(bound) = workload
        .max_interruption_risk
        .filter(|b| !(0.0..=1.0).contains(b))
    {
        return Err(Error::invalid(
            "max_interruption_risk",
            format!(
                "workload {}: max_interruption_risk must be in [0, 1], got {bound}",
                workload.name
            ),
        ));
    }
    let admitted = |o: &NodeOffering| workload.admitted_by(o);
    let Some(baseline) = offerings
        .iter()
        .filter(|o| o.capacity_type == CapacityType::OnDemand && admitted(o))
        .filter_map(|o| {
            dominant_share(&workload.requests, &o.allocatable)
                .map(|s| (o, s * o.price_per_hour as f64))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| pool_order(a.0, b.0)))
    else {
        return Ok(None);
    };
    let (base_offering, base_cost) = baseline;
    let bound = workload
        .max_interruption_risk
        .map_or(policy.max_interruption_risk, |b| {
            b.min(policy.max_interruption_risk)
        });

    let mut rejected = Vec::new();
    let mut eligible = Vec::new();
    for o in offerings
        .iter()
        .filter(|o| o.capacity_type == CapacityType::Spot)
    {
        let reject = |why| Rejected {
            instance_type: o.instance_type.clone(),
            zone: o.zone.clone(),
            why,
        };
        let Some(share) = dominant_share(&workload.requests, &o.allocatable) else {
            rejected.push(reject(Rejection::DoesNotFit));
            continue;
        };
        if !admitted(o) {
            rejected.push(reject(Rejection::NotAdmitted));
            continue;
        }
        let r = risk.probability(o);
        let cost = share * o.price_per_hour as f64;
        if r > bound {
            rejected.push(reject(Rejection::TooRisky { risk: r, bound }));
        } else if cost >= base_cost {
            rejected.push(reject(Rejection::NoSaving {
                cost,
                baseline: base_cost,
            }));
        } else {
            eligible.push(Pool {
                offering: o,
                cost,
                risk: r,
                saving: (base_cost - cost) * (1.0 - r) * HOURS_PER_MONTH,
            });
        }
    }
    eligible.sort_by(|a, b| {
        b.saving
            .total_cmp(&a.saving)
            .then_with(|| pool_order(a.offering, b.offering))
    });

    let spot_cap = (f64::from(workload.replicas) * policy.max_spot_share + 1e-9).floor() as u32;
    let k = policy.min_instance_types.max(policy.min_zones).max(1);
    let (chosen, on_demand_reason) = if !workload.interruptible {
        (
            Vec::new(),
            Some("it does not tolerate interruption".to_owned()),
        )
    } else if spot_cap < k {
        let reason = format!(
            "{spot_cap} spot replica(s) ({} × max_spot_share {}) cannot cover the {k} pools \
             the policy's diversity requires",
            workload.replicas, policy.max_spot_share
        );
        (Vec::new(), Some(reason))
    } else {
        match choose_pools(&eligible, policy, k as usize) {
            Some(chosen) => (chosen, None),
            None => {
                let types: BTreeSet<_> =
                    eligible.iter().map(|p| &p.offering.instance_type).collect();
                let zones: BTreeSet<_> = eligible.iter().map(|p| &p.offering.zone).collect();
                let reason = format!(
                    "the eligible spot pools cover {} type(s) and {} zone(s) in {k} pools at \
                     most; the policy requires {} types and {} zones",
                    types.len(),
                    zones.len(),
                    policy.min_instance_types,
                    policy.min_zones
                );
                (Vec::new(), Some(reason))
            }
        }
    };

    let counts = spread(chosen.len(), if chosen.is_empty() { 0 } else { spot_cap });
    let spot_replicas: u32 = counts.iter().sum();
    let worst_chosen = chosen
        .iter()
        .map(|&i| eligible[i].saving)
        .fold(f64::INFINITY, f64::min);
    for (i, p) in eligible.iter().enumerate() {
        if !chosen.contains(&i) {
            rejected.push(Rejected {
                instance_type: p.offering.instance_type.clone(),
                zone: p.offering.zone.clone(),
                why: Rejection::Outranked {
                    saving: p.saving,
                    worst_chosen: if chosen.is_empty() { 0.0 } else { worst_chosen },
                },
            });
        }
    }
    let spot: Vec<PoolChoice> = chosen
        .iter()
        .zip(&counts)
        .map(|(&i, &n)| {
            let p = &eligible[i];
            PoolChoice {
                instance_type: p.offering.instance_type.clone(),
                zone: p.offering.zone.clone(),
                capacity_type: CapacityType::Spot,
                replicas: n,
                replica_cost_per_hour: p.cost,
                interruption_probability: p.risk,
                expected_monthly_saving_per_replica: p.saving,
            }
        })
        .collect();
    let expected: f64 = spot
        .iter()
        .map(|c| f64::from(c.replicas) * c.expected_monthly_saving_per_replica)
        .sum();
    let gross: f64 = spot
        .iter()
        .map(|c| f64::from(c.replicas) * (base_cost - c.replica_cost_per_hour) * HOURS_PER_MONTH)
        .sum();
    let survive: f64 = spot
        .iter()
        .map(|c| (1.0 - c.interruption_probability).powf(f64::from(c.replicas)))
        .product();
    Ok(Some(PlacementPlan {
        workload: workload.name.clone(),
        replicas: workload.replicas,
        baseline: PoolChoice {
            instance_type: base_offering.instance_type.clone(),
            zone: base_offering.zone.clone(),
            capacity_type: CapacityType::OnDemand,
            replicas: workload.replicas,
            replica_cost_per_hour: base_cost,
            interruption_probability: 0.0,
            expected_monthly_saving_per_replica: 0.0,
        },
        spot,
        on_demand_replicas: workload.replicas - spot_replicas,
        monthly_savings: expected.round() as MicroCredits,
        gross_monthly_savings: gross.round() as MicroCredits,
        risk: 1.0 - survive,
        on_demand_reason,
        rejected,
    }))
}

fn pool_order(a: &NodeOffering, b: &NodeOffering) -> std::cmp::Ordering {
    (&a.instance_type, &a.zone).cmp(&(&b.instance_type, &b.zone))
}

/// `total` replicas over `pools` pools as evenly as possible, the first (best) pools taking
/// the remainder: each gets `⌊total / pools⌋` or one more.
fn spread(pools: usize, total: u32) -> Vec<u32> {
    if pools == 0 {
        return Vec::new();
    }
    let n = pools as u32;
    (0..n)
        .map(|i| total / n + u32::from(i < total % n))
        .collect()
}

/// The `k` pools (indices into `eligible`, which is sorted best first), taken greedily while
/// the types and zones still missing can be covered by the slots left; `None` when no `k`
/// pools cover them.
fn choose_pools(eligible: &[Pool<'_>], policy: &OptimizerPolicy, k: usize) -> Option<Vec<usize>> {
    let need_types = policy.min_instance_types as usize;
    let need_zones = policy.min_zones as usize;
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let covered = |chosen: &[usize]| {
        let types: BTreeSet<&str> = chosen
            .iter()
            .map(|&i| eligible[i].offering.instance_type.as_str())
            .collect();
        let zones: BTreeSet<&str> = chosen
            .iter()
            .map(|&i| eligible[i].offering.zone.as_str())
            .collect();
        (types, zones)
    };
    for i in 0..eligible.len() {
        if chosen.len() == k {
            break;
        }
        chosen.push(i);
        let (types, zones) = covered(&chosen);
        let rest = eligible[i + 1..].iter().map(|p| p.offering);
        let slots = k - chosen.len();
        let fits = pools_needed(&types, &zones, rest, need_types, need_zones)
            .is_some_and(|needed| needed <= slots);
        if !fits {
            chosen.pop();
        }
    }
    let (types, zones) = covered(&chosen);
    (chosen.len() == k && types.len() >= need_types && zones.len() >= need_zones).then_some(chosen)
}

/// The fewest pools of `rest` that bring the types and zones covered up to `need_types` and
/// `need_zones`, or `None` when they cannot. A pool of a new type in a new zone covers one of
/// each; the most such pools usable at once is a maximum matching of new types to new zones.
fn pools_needed<'a>(
    types: &BTreeSet<&str>,
    zones: &BTreeSet<&str>,
    rest: impl Iterator<Item = &'a NodeOffering>,
    need_types: usize,
    need_zones: usize,
) -> Option<usize> {
    let missing_types = need_types.saturating_sub(types.len());
    let missing_zones = need_zones.saturating_sub(zones.len());
    if missing_types == 0 && missing_zones == 0 {
        return Some(0);
    }
    let mut new_types: BTreeMap<&str, usize> = BTreeMap::new();
    let mut new_zones: BTreeMap<&str, usize> = BTreeMap::new();
    let mut edges: Vec<Vec<usize>> = Vec::new(); // by new zone: new types
    for o in rest {
        let t_new = !types.contains(o.instance_type.as_str());
        let z_new = !zones.contains(o.zone.as_str());
        let t = t_new.then(|| {
            let n = new_types.len();
            *new_types.entry(o.instance_type.as_str()).or_insert(n)
        });
        let z = z_new.then(|| {
            let n = new_zones.len();
            let z = *new_zones.entry(o.zone.as_str()).or_insert(n);
            if z == edges.len() {
                edges.push(Vec::new());
            }
            z
        });
        if let (Some(t), Some(z)) = (t, z) {
            edges[z].push(t);
        }
    }
    if new_types.len() < missing_types || new_zones.len() < missing_zones {
        return None;
    }
    let matching = max_matching(&edges, new_types.len());
    let both = matching.min(missing_types).min(missing_zones);
    Some(missing_types + missing_zones - both)
}

/// The size of a maximum matching of the left vertices (`edges[l]` lists their right
/// neighbours) to `rights` right vertices, by augmenting paths.
fn max_matching(edges: &[Vec<usize>], rights: usize) -> usize {
    fn augment(
        l: usize,
        edges: &[Vec<usize>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &r in &edges[l] {
            if !seen[r] {
                seen[r] = true;
                if owner[r].is_none_or(|o| augment(o, edges, seen, owner)) {
                    owner[r] = Some(l);
                    return true;
                }
            }
        }
        false
    }
    let mut owner = vec![None; rights];
    (0..edges.len())
        .filter(|&l| augment(l, edges, &mut vec![false; rights], &mut owner))
        .count()
}

fn percent(p: f64) -> String {
    format!("{:.1}%", 100.0 * p)
}

/// Micro-credits as credits with two decimals.
pub fn credits(micros: f64) -> String {
    format!("{:.2}", micros / 1e6)
}

/// An hourly rate in micro-credits as credits with four decimals.
pub fn rate(micros: f64) -> String {
    format!("{:.4}", micros / 1e6)
}

impl PlacementPlan {
    /// The plan as a recommendation, when it moves replicas to spot.
    pub fn recommendation(&self) -> Option<Recommendation> {
        if self.spot.is_empty() {
            return None;
        }
        let spot_replicas = self.replicas - self.on_demand_replicas;
        let types: BTreeSet<_> = self.spot.iter().map(|c| &c.instance_type).collect();
        let zones: BTreeSet<_> = self.spot.iter().map(|c| &c.zone).collect();
        let pools: Vec<String> = self
            .spot
            .iter()
            .map(|c| format!("{}/{} ×{}", c.instance_type, c.zone, c.replicas))
            .collect();
        let summary = format!(
            "run {spot_replicas} of {} replicas on spot over {} types in {} zones ({}); keep {} on \
             demand on {}",
            self.replicas,
            types.len(),
            zones.len(),
            pools.join(", "),
            self.on_demand_replicas,
            self.baseline.instance_type
        );
        let mut details = vec![format!(
            "baseline: every replica on demand on {}/{} at {} credits per replica-hour",
            self.baseline.instance_type,
            self.baseline.zone,
            rate(self.baseline.replica_cost_per_hour)
        )];
        for c in &self.spot {
            details.push(format!(
                "{}/{}: {} replica(s) at {} credits per replica-hour, interruption {} per month, \
                 expected saving {} credits per replica-month",
                c.instance_type,
                c.zone,
                c.replicas,
                rate(c.replica_cost_per_hour),
                percent(c.interruption_probability),
                credits(c.expected_monthly_saving_per_replica)
            ));
        }
        details.push(format!(
            "gross saving {} credits per month; {} after the expected interruptions; \
             probability of at least one interruption per month {}",
            credits(self.gross_monthly_savings as f64),
            credits(self.monthly_savings as f64),
            percent(self.risk)
        ));
        details.extend(self.rejection_summary());
        Some(Recommendation {
            kind: RecommendationKind::SpotPlacement,
            target: self.workload.clone(),
            summary,
            monthly_savings: self.monthly_savings,
            risk: self.risk,
            details,
        })
    }

    /// One line per kind of rejection, naming the best offering of each.
    pub fn rejection_summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let count = |f: fn(&Rejection) -> bool| self.rejected.iter().filter(|r| f(&r.why)).count();
        let unfit = count(|w| matches!(w, Rejection::DoesNotFit));
        let unadmitted = count(|w| matches!(w, Rejection::NotAdmitted));
        if unfit + unadmitted > 0 {
            lines.push(format!(
                "rejected: {unfit} spot offering(s) too small for a replica, {unadmitted} whose \
                 labels or taints do not admit it"
            ));
        }
        let best_risky = self
            .rejected
            .iter()
            .filter_map(|r| match r.why {
                Rejection::TooRisky { risk, bound } => Some((r, risk, bound)),
                _ => None,
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((r, risk, bound)) = best_risky {
            lines.push(format!(
                "rejected: {} pool(s) above the risk bound {}, the least risky {}/{} at {}",
                count(|w| matches!(w, Rejection::TooRisky { .. })),
                percent(bound),
                r.instance_type,
                r.zone,
                percent(risk)
            ));
        }
        let no_saving = count(|w| matches!(w, Rejection::NoSaving { .. }));
        if no_saving > 0 {
            lines.push(format!(
                "rejected: {no_saving} pool(s) no cheaper per replica than the baseline"
            ));
        }
        let mut outranked: Vec<_> = self
            .rejected
            .iter()
            .filter_map(|r| match r.why {
                Rejection::Outranked {
                    saving,
                    worst_chosen,
                } => Some((r, saving, worst_chosen)),
                _ => None,
            })
            .collect();
        outranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (r, saving, worst) in outranked.iter().take(3) {
            let why = if saving > worst {
                "adds no type or zone the policy still needed"
            } else {
                "saves less than every chosen pool"
            };
            lines.push(format!(
                "not chosen: {}/{} (expected {} credits per replica-month, lowest chosen {}): {why}",
                r.instance_type,
                r.zone,
                credits(*saving),
                credits(*worst)
            ));
        }
        if outranked.len() > 3 {
            lines.push(format!(
                "not chosen: {} more eligible pool(s) saving less",
                outranked.len() - 3
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_and_best_first() {
        assert_eq!(spread(3, 7), vec![3, 2, 2]);
        assert_eq!(spread(3, 3), vec![1, 1, 1]);
        assert_eq!(spread(2, 7), vec![4, 3]);
        assert_eq!(spread(4, 9), vec![3, 2, 2, 2]);
        assert!(spread(0, 5).is_empty());
    }

    #[test]
    fn dominant_share_takes_the_scarcest_resource() {
        let cap = ResourceVector {
            cpu_millis: 4000,
            memory_bytes: 16 << 30,
            gpus: 0,
            pods: 110,
        };
        let req = ResourceVector {
            cpu_millis: 1000,
            memory_bytes: 8 << 30,
            gpus: 0,
            pods: 0,
        };
        assert_eq!(dominant_share(&req, &cap), Some(0.5));
        let gpu = ResourceVector { gpus: 1, ..req };
        assert_eq!(dominant_share(&gpu, &cap), None);
    }

    #[test]
    fn matching_counts_disjoint_pairs() {
        // zones 0 and 1 both only reach type 0: one pair; zone 2 reaches type 1.
        assert_eq!(max_matching(&[vec![0], vec![0], vec![1]], 2), 2);
        assert_eq!(max_matching(&[vec![0, 1], vec![0]], 2), 2);
        assert_eq!(max_matching(&[], 3), 0);
    }
}
