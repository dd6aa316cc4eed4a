#!/usr/bin/env bash
# The Kubernetes stand-in's throughput against an axum hello-world handler measured in the
# same run: pods created, scheduled and Running per second, and watch events delivered per
# second to 10 watchers, with 1,000 pods (or $1). Figures go in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p onmemos-kube-standin --features kube --example bench_standin
exec target/release/examples/bench_standin "${1:-1000}"
