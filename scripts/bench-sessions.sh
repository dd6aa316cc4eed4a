#!/usr/bin/env bash
# Sessions on local compute, each figure next to its bare baseline in the same run:
# time to interactive (create → first exec output) against a bare fork+exec, shell throughput
# (cat of a 100 MB file) and keystroke echo through the WebSocket shell against a bare PTY.
# Usage: scripts/bench-sessions.sh [runs] [megabytes]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p onmemos-server --example bench_sessions
target/release/examples/bench_sessions "${1:-100}" "${2:-100}"
