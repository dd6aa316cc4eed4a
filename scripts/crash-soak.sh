#!/usr/bin/env bash
# The kill -9 test, longer: kills the server N times (default 300) during load and checks after
# every restart that nothing acknowledged was lost. Usage: scripts/crash-soak.sh [N] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
export ONMEMOS_CRASH_ROUNDS="${1:-300}"
[ -n "${2:-}" ] && export ONMEMOS_SEED="$2"
cargo nextest run -p onmemos-cli --all-features -E 'binary(crash)' --no-capture
