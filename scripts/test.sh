#!/usr/bin/env bash
# The whole test suite: formatting, lints, the dependency rule of onmemos-core, every test
# (unit, conformance, router, end to end), doctests and examples.
#
# Real services are started here, on loopback ports picked at run time, and stopped on exit
# (see scripts/services.sh). What is missing is installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
# A link that runs out of disk dies with a bus error; say how much there was.
df -h . | tail -1
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

step "formatting"
cargo fmt --all -- --check

step "who may depend on whom (types, core, client: scripts/check-core-deps.sh)"
scripts/check-core-deps.sh

step "dependencies: sources, licenses, bans (cargo deny, deny.toml)"
if ! cargo deny --version >/dev/null 2>&1; then
  step "installing cargo-deny"
  cargo install --locked cargo-deny
fi
cargo deny --log-level error check bans licenses sources

step "clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "every feature on its own compiles, without warnings (cargo hack)"
if ! cargo hack --version >/dev/null 2>&1; then
  step "installing cargo-hack"
  cargo install --locked cargo-hack
fi
hack_log="$(mktemp)"
# A library leaves the Kubernetes API version to the application (k8s-openapi); the checks
# of `kubernetes` alone pick the oldest one supported.
K8S_OPENAPI_ENABLED_VERSION=1.33 cargo hack check --each-feature --no-dev-deps \
  -p onmemos-types -p onmemos-core -p onmemos-backends -p onmemos-client -p onmemos -p onmemos-cli 2>&1 | tee "$hack_log"
if grep -q '^warning' "$hack_log"; then
  echo "a feature combination builds with warnings (above)" >&2
  exit 1
fi
rm -f "$hack_log"

step "the declared rust-version holds (scripts/check-msrv.sh)"
scripts/check-msrv.sh

step "bubblewrap (the session sandbox)"
if ! command -v bwrap >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } ||
    echo "NOTICE: could not install bubblewrap: sandboxed sessions are not tested on this machine"
fi
command -v bwrap || true

services_start

step "examples"
# Each example checks what it shows and fails loudly; the quickstart starts its own server
# (no ONMEMOS_URL here), examples/python/quickstart.py runs in the Python step.
for example in in_process quickstart embed_router custom_backend; do
  printf -- '--- %s\n' "$example"
  env -u ONMEMOS_URL -u ONMEMOS_API_KEY cargo run --quiet --all-features --example "$example"
done
step "python bindings (pip install ./onmemos-client, pytest against onmemos serve)"
cargo build -p onmemos-cli --all-features
scripts/test-python.sh
step "the API from outside: schemathesis and a generated client (scripts/test-api.sh)"
scripts/test-api.sh
step "doctests"
cargo test --workspace --all-features --doc
# Last, so its summary closes the output.
step "tests"
cargo nextest run --workspace --all-features --no-fail-fast
