#!/usr/bin/env bash
# Storage through the server next to object_store used directly, in the same run: upload and
# download throughput of one file (1 GiB by default) to the local file system and to S3 (moto),
# and the server's resident memory during each transfer (streaming keeps it flat).
# Usage: scripts/bench-storage.sh [megabytes]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
cargo build --quiet --release -p onmemos-cli --features s3
cargo build --quiet --release --features s3,client --example bench_storage
mkdir -p "$SERVICES_DIR"
trap services_stop EXIT
start_moto
target/release/examples/bench_storage target/release/onmemos "${1:-1024}" "$ONMEMOS_TEST_S3_ENDPOINT"
