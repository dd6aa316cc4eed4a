#!/usr/bin/env bash
# Who may depend on whom (docs/architecture.md), checked on the real dependency graph:
# - onmemos-types is plain data: no runtime (tokio), no I/O crate, utoipa only with `openapi`;
# - onmemos-core holds the domain, the ports and the services: no database, object-store,
#   Kubernetes or HTTP crate (backends depend on it, never the other way round);
# - onmemos-client (and so the Python wheel) reaches neither the engine nor a server crate.
set -euo pipefail
cd "$(dirname "$0")/.."

# check PACKAGE FEATURES WHAT FORBIDDEN-REGEX
check() {
  local package=$1 features=$2 what=$3 forbidden=$4 tree offenders
  # shellcheck disable=SC2086
  tree=$(cargo tree -p "$package" -e normal $features --prefix none --format '{p}')
  if offenders=$(printf '%s\n' "$tree" | grep -E "$forbidden"); then
    echo "$package depends on crates it must not use ($what):" >&2
    printf '%s\n' "$offenders" | sort -u >&2
    exit 1
  fi
  echo "ok: $package ($features) uses none of: $what"
}

io='sqlx|sqlx-core|object_store|kube|kube-client|reqwest|pyo3|hyper|axum'
check onmemos-types --no-default-features "tokio, utoipa, I/O crates" \
  "^(tokio|utoipa|$io)( |$)"
check onmemos-types --all-features "tokio, I/O crates" "^(tokio|$io)( |$)"
check onmemos-core --all-features "I/O crates" "^($io)( |$)"
check onmemos-client --all-features "the engine, server and store crates" \
  '^(onmemos-core|onmemos-server|onmemos-backends|sqlx|sqlx-core|object_store|axum|utoipa|kube|k8s-openapi)( |$)'
# An embedder of the engine with SQLite compiles no command-line, terminal or HTTP-client crate
# (those are the `onmemos-cli` package's and the `client` feature's).
cli='clap|clap_builder|crossterm|comfy-table|indicatif|reqwest|figment'
check onmemos "--no-default-features --features sqlite" "CLI crates, reqwest, axum" \
  "^($cli|axum|hyper)( |$)"
check onmemos "" "CLI crates, reqwest" "^($cli)( |$)"
# Kubernetes is compiled only for those who ask for it (the `kubernetes` feature).
check onmemos "" "Kubernetes crates" "^(kube|kube-client|kube-runtime|k8s-openapi)( |$)"
