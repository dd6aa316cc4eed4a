#!/usr/bin/env bash
# Client overhead: `client.sessions().get()` against raw reqwest issuing the same request to the
# same in-process server (embedded defaults in a temporary directory), in the same run.
# Usage: scripts/bench-client.sh [rounds] [requests]   (default: 5 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --features client --example bench_client
target/release/examples/bench_client "$@"
