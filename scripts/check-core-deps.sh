#!/usr/bin/env bash
# onmemos-core must build without I/O crates: it holds the domain, the ports and the services,
# and backends depend on it, never the other way round.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(sqlx|sqlx-core|object_store|kube|kube-client|reqwest|pyo3|hyper|axum)( |$)'
tree=$(cargo tree -p onmemos-core -e normal --all-features --prefix none --format '{p}')
if offenders=$(printf '%s\n' "$tree" | grep -E "$forbidden"); then
  echo "onmemos-core depends on I/O crates it must not use:" >&2
  printf '%s\n' "$offenders" | sort -u >&2
  exit 1
fi
echo "ok: onmemos-core uses none of sqlx, object_store, kube, reqwest, pyo3, hyper, axum"
