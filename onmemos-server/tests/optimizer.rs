//! `POST /v1/optimizer/recommendations`: a report for a snapshot, the scope it needs, and bad
//! snapshots refused with the field named.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApi;
use serde_json::{Value, json};

fn demo() -> Value {
    serde_json::to_value(onmemos_optimizer::synthetic::demo_request(1))
        .unwrap_or_else(|e| panic!("demo request: {e}"))
}

#[tokio::test]
async fn a_snapshot_gets_a_report_with_totals_per_kind() {
    let api = TestApi::new().await;
    let key = api.member("ops@example.com").await;
    let r = api
        .call(
            Method::POST,
            "/v1/optimizer/recommendations",
            Some(&key),
            Some(demo()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let recs = r.body["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kinds: Vec<&str> = r.body["totals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "consolidation",
            "spot_placement",
            "rightsizing",
            "office_hours"
        ]
    );
    for total in r.body["totals"].as_array().into_iter().flatten() {
        let of_kind: Vec<&Value> = recs.iter().filter(|x| x["kind"] == total["kind"]).collect();
        let sum: i64 = of_kind
            .iter()
            .filter_map(|x| x["monthly_savings"].as_i64())
            .sum();
        assert_eq!(total["count"].as_u64(), Some(of_kind.len() as u64));
        assert_eq!(total["monthly_savings"].as_i64(), Some(sum));
    }
    // The same report as the library gives.
    let direct = onmemos_optimizer::CostOptimizer::new()
        .and_then(|o| o.run(&onmemos_optimizer::synthetic::demo_request(1)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recs.len(), direct.len());
}

#[tokio::test]
async fn it_needs_the_optimizer_scope() {
    let api = TestApi::new().await;
    let key = api.member("dev@example.com").await;
    let r = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "ro", "scopes": ["workspaces:read"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let narrow = r.body["secret"].as_str().unwrap_or_default().to_owned();
    let r = api
        .call(
            Method::POST,
            "/v1/optimizer/recommendations",
            Some(&narrow),
            Some(demo()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("optimizer:run"), "{}", r.text);
}

#[tokio::test]
async fn bad_snapshots_are_refused_naming_what_was_wrong() {
    let api = TestApi::new().await;
    let key = api.member("ops@example.com").await;
    let mut cases = Vec::new();
    let mut v = demo();
    v["policy"]["max_spot_share"] = json!(2.5);
    cases.push((v, "max_spot_share"));
    let mut v = demo();
    v["policy"]["schedules"][0]["wake"] = json!("25:99");
    cases.push((v, "wake"));
    let mut v = demo();
    v["snapshot"]["nodes"][0]["allocatable"]["cpu_millis"] = json!("lots");
    cases.push((v, "cpu_millis"));
    let mut v = demo();
    v["snapshot"]["pods"][20]["usage"]["step_secs"] = json!(0);
    cases.push((v, "step_secs"));
    cases.push((json!({"policy": {}}), "snapshot"));
    // Figures so large their sums would overflow (a node price near 2^62 was a 500).
    let mut v = demo();
    v["snapshot"]["nodes"][0]["price_per_hour"] = json!(1_u64 << 62);
    cases.push((v, "snapshot.nodes[0].price_per_hour"));
    let mut v = demo();
    v["snapshot"]["pods"][0]["requests"]["memory_bytes"] = json!(1_u64 << 60);
    cases.push((v, "snapshot.pods[0].requests.memory_bytes"));
    for (body, field) in cases {
        let r = api
            .call(
                Method::POST,
                "/v1/optimizer/recommendations",
                Some(&key),
                Some(body),
            )
            .await;
        assert!(
            r.status.is_client_error(),
            "{field}: {} {}",
            r.status,
            r.text
        );
        assert!(r.text.contains(field), "{field}: {}", r.text);
    }
}

/// Every `$ref` under `v`, as `#/components/schemas/Name` names.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x.as_str()) {
                    ("$ref", Some(r)) => out.push(r.to_owned()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_route_and_every_schema_it_uses_are_in_the_openapi_document() {
    let api = TestApi::new().await;
    let doc = api.call(Method::GET, "/openapi.json", None, None).await;
    let op = &doc.body["paths"]["/v1/optimizer/recommendations"]["post"];
    assert!(op.is_object(), "route missing from the OpenAPI document");
    let mut found = Vec::new();
    refs(&doc.body, &mut found);
    for name in [
        "OptimizationRequest",
        "ClusterSnapshot",
        "OfficeHoursSchedule",
        "OptimizationReport",
    ] {
        assert!(
            found.iter().any(|r| r.ends_with(&format!("/{name}"))),
            "{name} is not referenced"
        );
    }
    for r in found {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc.body["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
}

/// Like every other body, the optimizer's request has only known fields, at every depth.
#[tokio::test]
async fn unknown_fields_in_a_snapshot_are_refused_by_name() {
    let api = TestApi::new().await;
    let key = api.member("strict@example.com").await;
    let mut top = demo();
    top["dry_run"] = json!(true);
    let mut deep = demo();
    deep["snapshot"]["nodes"][0]["colour"] = json!("blue");
    for (body, field) in [(top, "dry_run"), (deep, "colour")] {
        let r = api
            .call(
                Method::POST,
                "/v1/optimizer/recommendations",
                Some(&key),
                Some(body),
            )
            .await;
        r.assert_error(400, "invalid_request");
        assert!(r.text.contains(field), "{}", r.text);
    }
}
