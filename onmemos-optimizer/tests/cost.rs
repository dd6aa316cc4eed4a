//! The `CostOptimizer` behind the port: every kind of recommendation on the demonstration
//! cluster, each saving recomputed from its engine, and bad requests refused.

use onmemos_core::ports::optimizer::{
    CapacityType, NodeOffering, OptimizationRequest, Optimizer, RecommendationKind,
};
use onmemos_optimizer::CostOptimizer;
use onmemos_optimizer::cost::savings_by_kind;
use onmemos_optimizer::office_hours::Schedule;
use onmemos_optimizer::packing::consolidate;
use onmemos_optimizer::synthetic::demo_request;

fn optimizer() -> CostOptimizer {
    CostOptimizer::new().unwrap_or_else(|e| panic!("optimizer: {e}"))
}

#[tokio::test]
async fn the_demo_cluster_gets_every_kind_with_savings_that_add_up() {
    let request = demo_request(1);
    let recs = optimizer()
        .recommend(&request)
        .await
        .unwrap_or_else(|e| panic!("recommend: {e}"));
    for r in &recs {
        eprintln!(
            "{:?} {} {:.2} risk {:.3}: {}\n    {}",
            r.kind,
            r.target,
            r.monthly_savings as f64 / 1e6,
            r.risk,
            r.summary,
            r.details.join("\n    ")
        );
    }
    let of = |k| recs.iter().filter(move |r| r.kind == k);
    for kind in [
        RecommendationKind::Consolidation,
        RecommendationKind::SpotPlacement,
        RecommendationKind::Rightsizing,
        RecommendationKind::OfficeHours,
    ] {
        assert!(of(kind).count() > 0, "no {kind:?} recommendation");
    }
    for r in &recs {
        assert!(
            (0.0..=1.0).contains(&r.risk),
            "{}: risk {}",
            r.target,
            r.risk
        );
        assert!(!r.summary.is_empty() && !r.details.is_empty());
    }

    // Consolidation: what the packer saves, over a 30-day month.
    let on_demand: Vec<NodeOffering> = request
        .snapshot
        .offerings
        .iter()
        .filter(|o| o.capacity_type == CapacityType::OnDemand)
        .cloned()
        .collect();
    let plan = consolidate(&request.snapshot, &on_demand, &request.policy)
        .unwrap_or_else(|e| panic!("consolidate: {e}"));
    let consolidation = of(RecommendationKind::Consolidation)
        .next()
        .unwrap_or_else(|| panic!("no consolidation"));
    assert_eq!(
        consolidation.monthly_savings,
        (plan.current_cost_per_hour - plan.cost_per_hour) * 720
    );
    assert!(plan.drained_nodes.len() <= request.policy.max_drained_nodes as usize);

    // Office hours: the snapshot is taken on a Friday at 02:00 in Paris, asleep.
    let schedule = Schedule::parse(&request.policy.schedules[0]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!schedule.state_at(request.snapshot.taken_at).awake);
    let office = of(RecommendationKind::OfficeHours)
        .next()
        .unwrap_or_else(|| panic!("no office hours"));
    assert_eq!(office.target, "Deployment/app-2");
    assert!(
        office.summary.starts_with("scale down to 0"),
        "{}",
        office.summary
    );
    assert!(office.monthly_savings > 0);

    // Spot placement on the two workloads listed, each saving positive and within its risk.
    let spot: Vec<_> = of(RecommendationKind::SpotPlacement).collect();
    assert!(spot.iter().all(|r| r.monthly_savings > 0 && r.risk > 0.0));

    // The totals are the sums within each kind.
    let totals = savings_by_kind(&recs);
    let sizing_sum: i64 = of(RecommendationKind::Rightsizing)
        .map(|r| r.monthly_savings)
        .sum();
    assert_eq!(totals.get("rightsizing").map(|t| t.1), Some(sizing_sum));

    // Deterministic: the same request gives the same answer.
    let again = optimizer().run(&request).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, recs);
}

#[test]
fn bad_requests_are_refused_naming_the_field() {
    let mut request: OptimizationRequest = demo_request(2);
    request.policy.schedules[0].time_zone = "Mars/Olympus".into();
    let e = optimizer()
        .run(&request)
        .err()
        .unwrap_or_else(|| panic!("accepted an unknown time zone"));
    assert!(e.message().contains("Mars/Olympus"), "{}", e.message());

    let mut request = demo_request(2);
    request.policy.max_interruption_risk = -0.1;
    let e = optimizer()
        .run(&request)
        .err()
        .unwrap_or_else(|| panic!("accepted a negative risk bound"));
    assert!(
        e.message().contains("max_interruption_risk"),
        "{}",
        e.message()
    );

    let mut request = demo_request(2);
    if let Some(u) = request
        .snapshot
        .pods
        .iter_mut()
        .find_map(|p| p.usage.as_mut())
    {
        u.memory_bytes.pop();
    }
    let e = optimizer()
        .run(&request)
        .err()
        .unwrap_or_else(|| panic!("accepted a ragged usage series"));
    assert!(e.message().contains("samples"), "{}", e.message());
}
