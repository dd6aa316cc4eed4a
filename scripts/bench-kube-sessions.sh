#!/usr/bin/env bash
# Time to interactive (create → first exec output) of Kubernetes sessions through OnMemOS on
# the stand-in, against the bare kube-rs sequence (create the same pod, wait Running by watch,
# exec `echo hi`) measured in the same run: $1 rounds (30), then $2 sessions at once (100).
# Targets: OnMemOS p50 <= 1.25 x the bare p50, p99 <= 1.5 x. Figures go in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p onmemos-backends --features kubernetes,sqlite --example bench_kube_sessions
exec target/release/examples/bench_kube_sessions "${1:-30}" "${2:-100}"
