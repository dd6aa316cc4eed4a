#!/usr/bin/env bash
# The API's hot path: an authenticated GET /v1/sessions/{id} through the whole server against a
# bare axum handler of the same shape, with wrk (2 threads, 16 connections), in the same run.
# Usage: scripts/bench-api.sh [rounds] [seconds]   (default: 3 10)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --quiet --release --features client --example bench_api
target/release/examples/bench_api "$@"
