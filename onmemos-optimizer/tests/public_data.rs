//! Loaders and the risk model against the full public files in `../shared/data/`
//! (or `ONMEMOS_SHARED_DATA`). These files are not shipped with the project; a missing file
//! fails the test with the path it looked for.

use std::path::PathBuf;

use onmemos_optimizer::catalog::{
    Catalog, OperatingSystem, PoolKey, SpotAdvisorFeed, parse_gce_addon_csv, parse_gce_machine_csv,
    parse_gce_unit_csv, parse_on_demand_csv,
};
use onmemos_optimizer::risk::{RiskModel, TrainingOptions, train_and_evaluate};

fn data(name: &str) -> String {
    let dir = std::env::var_os("ONMEMOS_SHARED_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
        PathBuf::from,
    );
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set ONMEMOS_SHARED_DATA to the public data folder)",
            path.display()
        )
    })
}

fn feed() -> SpotAdvisorFeed {
    SpotAdvisorFeed::from_json(&data("aws-spot-advisor-2025.json"))
        .unwrap_or_else(|e| panic!("feed: {e}"))
}

#[test]
fn the_full_spot_advisor_feed_parses() {
    let feed = feed();
    assert_eq!(feed.regions().len(), 33);
    let edges: Vec<f64> = feed.bands.iter().map(|b| b.upper_pct).collect();
    assert_eq!(edges, [5.0, 11.0, 16.0, 22.0, 100.0]);
    assert_eq!(feed.bands[4].label, ">20%");
    assert!(feed.instance_types.len() > 900);
    assert!(
        feed.advice.values().any(|a| a.savings_pct < 0),
        "negative savings are in the feed and must survive parsing"
    );
    let m5 = &feed.instance_types["m5.large"];
    assert_eq!((m5.vcpus, m5.memory_mib), (2, 8192));
    let pool = PoolKey {
        region: "us-east-1".into(),
        os: OperatingSystem::Linux,
        instance_type: "m5.large".into(),
    };
    assert!(feed.advice[&pool].band <= 4);
}

#[test]
fn malformed_feeds_name_what_is_wrong() {
    let cases = [
        ("{", "spot advisor feed"),
        (
            r#"{"instance_types":{},"ranges":[],"spot_advisor":{}}"#,
            "`ranges` is empty",
        ),
        (
            r#"{"instance_types":{"m5.large":{"cores":"two","ram_gb":8}},"ranges":[],"spot_advisor":{}}"#,
            "instance_types.m5.large.cores",
        ),
        (
            r#"{"instance_types":{},"ranges":[{"index":0,"label":"<5%","max":5}],
               "spot_advisor":{"us-east-1":{"Linux":{"m5.large":{"s":50,"r":3}}}}}"#,
            "band 3",
        ),
        (
            r#"{"instance_types":{},"ranges":[{"index":0,"label":"<5%","max":5}],
               "spot_advisor":{"us-east-1":{"Plan9":{}}}}"#,
            "Plan9",
        ),
        (
            r#"{"instance_types":{},"ranges":[{"index":0,"label":"a","max":50},{"index":1,"label":"b","max":20}],
               "spot_advisor":{}}"#,
            "ranges[1]",
        ),
    ];
    for (json, needle) in cases {
        let e = SpotAdvisorFeed::from_json(json)
            .err()
            .unwrap_or_else(|| panic!("accepted {json}"));
        assert!(
            e.message().contains(needle),
            "{needle:?} not in {:?}",
            e.message()
        );
        assert_eq!(e.kind(), onmemos_core::error::ErrorKind::InvalidInput);
    }
}

#[test]
fn the_price_tables_parse_and_join_the_feed() {
    let on_demand =
        parse_on_demand_csv(&data("aws-ondemand-prices.csv")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(on_demand.len(), 1110);
    let m5 = on_demand
        .iter()
        .find(|p| p.instance_type == "m5.large")
        .unwrap_or_else(|| panic!("m5.large"));
    assert_eq!(m5.price_per_hour, 96_000);

    let machines =
        parse_gce_machine_csv(&data("gce-machine-prices.csv")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machines.len(), 222);
    assert_eq!(
        machines.iter().filter(|m| m.preemptible.is_some()).count(),
        195
    );
    assert_eq!(
        parse_gce_unit_csv(&data("gce-family-unit-prices.csv"))
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        40
    );
    assert_eq!(
        parse_gce_addon_csv(&data("gce-addon-prices.csv"))
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        13
    );

    let catalog = Catalog::from_aws(feed(), on_demand);
    let spot = catalog
        .spot_price("us-east-1", "m5.large")
        .unwrap_or_else(|| panic!("m5.large spot"));
    assert!(spot > 0 && spot < 96_000, "{spot}");
    let offerings = catalog.offerings("us-east-1", &["us-east-1a".into(), "us-east-1b".into()]);
    assert!(offerings.len() > 1000);
    assert!(
        catalog
            .offerings("eu-west-1", &["eu-west-1a".into()])
            .is_empty()
    );
}

#[test]
fn retraining_reproduces_the_shipped_model_and_it_beats_its_baselines() {
    let retrained = train_and_evaluate(&feed(), TrainingOptions::default());
    let shipped = RiskModel::shipped().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(retrained.features, shipped.features);
    for (a, b) in retrained.weights.iter().zip(&shipped.weights) {
        assert!((a - b).abs() < 1e-9, "weights differ: {a} vs {b}");
    }
    let evaluation = shipped
        .evaluation
        .unwrap_or_else(|| panic!("no evaluation"));
    let [model, midpoint, prior] = evaluation.scores.as_slice() else {
        panic!("three predictors expected");
    };
    assert_eq!(
        (model.name.as_str(), midpoint.name.as_str()),
        ("model", "band midpoint")
    );
    assert!(model.log_loss < midpoint.log_loss && midpoint.log_loss < prior.log_loss);
    assert!(model.brier < midpoint.brier);
    assert!(model.brier_high < midpoint.brier_high);
}
