//! [`CostOptimizer`]: every engine behind the core's [`Optimizer`] port.
//!
//! One request runs, in order: consolidation (bin packing on the on-demand offerings), spot
//! placement per workload, rightsizing per workload with usage, and each office-hours schedule.
//! Each engine's savings are measured against the cluster as it is, so savings of different
//! kinds overlap (a rightsized workload needs fewer nodes, which the consolidation also counts):
//! add them within a kind, not across kinds.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::error::Result;
use onmemos_core::model::MicroCredits;
use onmemos_core::ports::optimizer::{
    CapacityType, ClusterSnapshot, NodeOffering, OptimizationRequest, Optimizer,
    OptimizerCapabilities, Recommendation, RecommendationKind, ResourceVector, WorkloadInfo,
};

use crate::catalog::Catalog;
use crate::office_hours::Schedule;
use crate::packing::{PackingPlan, consolidate};
use crate::placement::{
    HOURS_PER_MONTH, OfferingRisk, credits, dominant_share, place, rate, validate_policy,
};
use crate::rightsizing::{RightsizingOptions, UnitPrices, rightsize};
use crate::risk::RiskModel;

/// The optimizer: the shipped risk model, an optional catalog for snapshots that bring no
/// offerings, and the rightsizing parameters.
#[derive(Debug, Clone)]
pub struct CostOptimizer {
    model: RiskModel,
    catalog: Option<Catalog>,
    rightsizing: RightsizingOptions,
}

impl CostOptimizer {
    /// An optimizer with the shipped risk model and no catalog of its own.
    pub fn new() -> Result<Self> {
        Ok(Self {
            model: RiskModel::shipped()?,
            catalog: None,
            rightsizing: RightsizingOptions::default(),
        })
    }

    /// Offerings for snapshots that carry none: the catalog's, for the snapshot's region, in
    /// the zones of its nodes.
    pub fn with_catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Other rightsizing parameters.
    pub fn with_rightsizing(mut self, options: RightsizingOptions) -> Result<Self> {
        options.validate()?;
        self.rightsizing = options;
        Ok(self)
    }

    /// Another risk model.
    pub fn with_model(mut self, model: RiskModel) -> Self {
        self.model = model;
        self
    }

    /// What may be bought: the snapshot's offerings, or the catalog's.
    fn offerings(&self, snapshot: &ClusterSnapshot) -> Vec<NodeOffering> {
        if !snapshot.offerings.is_empty() {
            return snapshot.offerings.clone();
        }
        match (&self.catalog, &snapshot.region) {
            (Some(catalog), Some(region)) => {
                let mut zones: Vec<String> =
                    snapshot.nodes.iter().map(|n| n.zone.clone()).collect();
                zones.sort();
                zones.dedup();
                catalog.offerings(region, &zones)
            }
            _ => Vec::new(),
        }
    }

    /// Every recommendation for `request`, best saving first within each kind.
    pub fn run(&self, request: &OptimizationRequest) -> Result<Vec<Recommendation>> {
        let (snapshot, policy) = (&request.snapshot, &request.policy);
        validate_policy(policy)?;
        let schedules = policy
            .schedules
            .iter()
            .map(Schedule::parse)
            .collect::<Result<Vec<_>>>()?;
        let offerings = self.offerings(snapshot);
        let mut out = Vec::new();

        let on_demand: Vec<NodeOffering> = offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::OnDemand)
            .cloned()
            .collect();
        if !snapshot.nodes.is_empty() {
            let plan = consolidate(snapshot, &on_demand, policy)?;
            out.extend(consolidation(
                &plan,
                snapshot.pods.len(),
                policy.max_drained_nodes,
            ));
        }

        let risk = OfferingRisk::new(
            &self.model,
            snapshot.region.as_deref().unwrap_or_default(),
            &offerings,
        );
        let mut placements = Vec::new();
        for workload in workloads(snapshot) {
            if let Some(plan) = place(&workload, &offerings, policy, &risk)? {
                placements.extend(plan.recommendation());
            }
        }
        sort_by_savings(&mut placements);
        out.extend(placements);

        let mut sizings: Vec<Recommendation> = rightsize(
            snapshot,
            &UnitPrices::of_cluster(snapshot),
            &self.rightsizing,
        )?
        .iter()
        .filter_map(|s| s.recommendation())
        .collect();
        sort_by_savings(&mut sizings);
        out.extend(sizings);

        for schedule in &schedules {
            out.extend(office_hours(schedule, snapshot, &on_demand));
        }
        Ok(out)
    }
}

fn sort_by_savings(recs: &mut [Recommendation]) {
    recs.sort_by(|a, b| {
        b.monthly_savings
            .cmp(&a.monthly_savings)
            .then_with(|| a.target.cmp(&b.target))
    });
}

#[async_trait]
impl Optimizer for CostOptimizer {
    fn capabilities(&self) -> OptimizerCapabilities {
        OptimizerCapabilities::new(
            "cost",
            vec![
                RecommendationKind::Consolidation,
                RecommendationKind::SpotPlacement,
                RecommendationKind::Rightsizing,
                RecommendationKind::OfficeHours,
            ],
        )
    }

    async fn recommend(&self, request: &OptimizationRequest) -> Result<Vec<Recommendation>> {
        self.run(request)
    }
}

/// The snapshot's workloads, or one per pod owner when it lists none: replicas are the owner's
/// pods, requests its first pod's, and only `Deployment` and `ReplicaSet` owners are taken to
/// tolerate interruption (a bare pod, a StatefulSet or a Job is not moved to spot unasked).
pub fn workloads(snapshot: &ClusterSnapshot) -> Vec<WorkloadInfo> {
    if !snapshot.workloads.is_empty() {
        return snapshot.workloads.clone();
    }
    let mut by_owner: BTreeMap<&str, WorkloadInfo> = BTreeMap::new();
    for pod in snapshot.pods.iter().filter(|p| !p.daemonset) {
        let owner = pod.owner.as_deref().unwrap_or(pod.name.as_str());
        by_owner
            .entry(owner)
            .and_modify(|w| w.replicas += 1)
            .or_insert_with(|| WorkloadInfo {
                name: owner.to_owned(),
                replicas: 1,
                requests: pod.requests,
                interruptible: pod
                    .owner
                    .as_deref()
                    .is_some_and(|o| o.starts_with("Deployment/") || o.starts_with("ReplicaSet/")),
                max_interruption_risk: None,
                node_selector: pod.node_selector.clone(),
                tolerations: pod.tolerations.clone(),
            });
    }
    by_owner.into_values().collect()
}

fn consolidation(plan: &PackingPlan, pods: usize, max_drained: u32) -> Option<Recommendation> {
    let saving = plan.current_cost_per_hour - plan.cost_per_hour;
    if saving <= 0 || (plan.drained_nodes.is_empty() && plan.new_nodes.is_empty()) {
        return None;
    }
    let mut bought: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for n in &plan.new_nodes {
        *bought.entry((&n.instance_type, &n.zone)).or_default() += 1;
    }
    let bought_text: Vec<String> = bought
        .iter()
        .map(|((t, z), n)| format!("{n}× {t}/{z}"))
        .collect();
    let mut summary = format!("drain and remove {} node(s)", plan.drained_nodes.len());
    if !bought_text.is_empty() {
        summary.push_str(&format!("; buy {}", bought_text.join(", ")));
    }
    summary.push_str(&format!("; move {} pod(s)", plan.evictions));
    let bound = plan.lower_bound_per_hour.max(1) as f64;
    let mut drained: Vec<&str> = plan.drained_nodes.iter().map(String::as_str).collect();
    let more = drained.len().saturating_sub(10);
    drained.truncate(10);
    let mut details = vec![
        format!(
            "cost per hour: {} now, {} after ({} strategy); no placement of the pods costs \
             less than {} (cost / bound {:.3}; the bound ignores the drain budget of {} nodes)",
            credits(plan.current_cost_per_hour as f64),
            credits(plan.cost_per_hour as f64),
            plan.strategy,
            credits(plan.lower_bound_per_hour as f64),
            plan.cost_per_hour as f64 / bound,
            max_drained
        ),
        format!(
            "drained: {}{}",
            drained.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    ];
    if !plan.unplaceable.is_empty() {
        details.push(format!(
            "{} pod(s) fit on no node, before or after: {}",
            plan.unplaceable.len(),
            plan.unplaceable.join(", ")
        ));
    }
    Some(Recommendation {
        kind: RecommendationKind::Consolidation,
        target: "cluster".into(),
        summary,
        monthly_savings: (saving as f64 * HOURS_PER_MONTH).round() as MicroCredits,
        risk: if pods == 0 {
            0.0
        } else {
            plan.evictions as f64 / pods as f64
        },
        details,
    })
}

/// Cost per hour of one replica of `owner`: the mean of its running pods' dominant shares of
/// their nodes' prices, or, with none running, its first pod's requests on the cheapest
/// on-demand offering that fits them.
fn replica_cost(
    snapshot: &ClusterSnapshot,
    owner: &str,
    on_demand: &[NodeOffering],
) -> Option<f64> {
    let nodes: BTreeMap<&str, _> = snapshot
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n))
        .collect();
    let pods: Vec<_> = snapshot
        .pods
        .iter()
        .filter(|p| p.owner.as_deref().unwrap_or(&p.name) == owner)
        .collect();
    let running: Vec<f64> = pods
        .iter()
        .filter_map(|p| {
            let node = nodes.get(p.node.as_deref()?)?;
            Some(dominant_share(&p.requests, &node.allocatable)? * node.price_per_hour as f64)
        })
        .collect();
    if !running.is_empty() {
        return Some(running.iter().sum::<f64>() / running.len() as f64);
    }
    let requests: ResourceVector = snapshot
        .workloads
        .iter()
        .find(|w| w.name == owner)
        .map(|w| w.requests)
        .or_else(|| pods.first().map(|p| p.requests))?;
    on_demand
        .iter()
        .filter_map(|o| Some(dominant_share(&requests, &o.allocatable)? * o.price_per_hour as f64))
        .min_by(f64::total_cmp)
}

fn office_hours(
    schedule: &Schedule,
    snapshot: &ClusterSnapshot,
    on_demand: &[NodeOffering],
) -> Vec<Recommendation> {
    let at: DateTime<Utc> = snapshot.taken_at;
    let state = schedule.state_at(at);
    let asleep = schedule.asleep_hours(at);
    let next = state
        .next_change
        .map_or_else(|| "not within 14 days".to_owned(), |t| t.to_rfc3339());
    schedule
        .workloads
        .iter()
        .map(|owner| {
            let running = snapshot
                .pods
                .iter()
                .filter(|p| p.owner.as_deref().unwrap_or(&p.name) == owner.as_str())
                .count() as u32;
            let replicas = snapshot
                .workloads
                .iter()
                .find(|w| &w.name == owner)
                .map_or(running, |w| w.replicas.max(running));
            let cost = replica_cost(snapshot, owner, on_demand).unwrap_or(0.0);
            let saved = replicas.saturating_sub(schedule.sleep_replicas);
            let monthly = cost * f64::from(saved) * asleep;
            let summary = match (state.awake, running > schedule.sleep_replicas) {
                (false, true) => format!(
                    "scale down to {} replica(s) now (asleep until {next})",
                    schedule.sleep_replicas
                ),
                (true, false) => {
                    format!("wake up: scale back to its replicas now (awake until {next})")
                }
                (true, true) => {
                    format!("awake; scale down to {} at {next}", schedule.sleep_replicas)
                }
                (false, false) => format!("asleep; wake up at {next}"),
            };
            Recommendation {
                kind: RecommendationKind::OfficeHours,
                target: owner.clone(),
                summary,
                monthly_savings: monthly.round() as MicroCredits,
                risk: 0.0,
                details: vec![
                    format!(
                        "schedule {}: {} of the next 720 hours asleep",
                        schedule.name,
                        asleep.round()
                    ),
                    format!(
                        "{saved} replica(s) at {} credits per replica-hour while asleep",
                        rate(cost)
                    ),
                ],
            }
        })
        .collect()
}

/// Total monthly savings per kind of recommendation, for reports (kinds overlap; do not add
/// across them).
pub fn savings_by_kind(recs: &[Recommendation]) -> BTreeMap<String, (usize, MicroCredits)> {
    let mut out: BTreeMap<String, (usize, MicroCredits)> = BTreeMap::new();
    for r in recs {
        let kind = serde_json::to_value(r.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let e = out.entry(kind).or_default();
        e.0 += 1;
        e.1 += r.monthly_savings;
    }
    out
}
