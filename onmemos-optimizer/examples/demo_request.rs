//! Prints the demonstration optimization request (a synthetic 12-node cluster with usage,
//! offerings, workloads and an office-hours schedule) as JSON:
//! `cargo run -p onmemos-optimizer --example demo_request > request.json`, then
//! `onmemos optimize --snapshot request.json`. An optional argument is the seed.

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let request = onmemos_optimizer::synthetic::demo_request(seed);
    match serde_json::to_string_pretty(&request) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("demo_request: {e}");
            std::process::exit(1);
        }
    }
}
