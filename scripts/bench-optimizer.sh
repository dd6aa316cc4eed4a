#!/usr/bin/env bash
# Optimizer benchmarks. Bin packing: 10k pods on 1k nodes with 200 instance types (seeded
# synthetic clusters), the engine next to first-fit decreasing in the same run, both as cost over
# the LP lower bound. Risk model: retrains on the public Spot Advisor feed and prints the held-out
# evaluation next to the band-midpoint and prior baselines. Rightsizing: 10k containers x 8 days
# of 1-minute samples, the histograms next to exact sort-based percentiles on the same cores.
# Usage: scripts/bench-optimizer.sh [seeds...]   (default: 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=("$@")
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1 2 3)
DATA="${ONMEMOS_SHARED_DATA:-../shared/data}"
cargo build --quiet --release -p onmemos-optimizer --example bench_optimizer --example train_risk_model
for seed in "${SEEDS[@]}"; do
  target/release/examples/bench_optimizer "$seed"
done
model="$(mktemp)"
target/release/examples/train_risk_model "$DATA/aws-spot-advisor-2025.json" "$model"
if cmp -s "$model" onmemos-optimizer/models/spot-risk-v1.json; then
  echo "risk model: retrained byte-for-byte equal to the shipped model"
else
  echo "risk model: retrained model differs from the shipped one (see $model)"
fi
