#!/usr/bin/env bash
# Checks Cargo.lock against a local copy of the RustSec advisory database, without network:
# CI cannot download it, so this runs where a copy can be read.
# Usage: scripts/check-advisories.sh /path/to/advisory-db   (a checkout of rustsec/advisory-db)
set -euo pipefail
cd "$(dirname "$0")/.."
db="${1:?usage: scripts/check-advisories.sh /path/to/advisory-db}"
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
# cargo deny reads databases from a directory of clones; give it this one, and no network.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/dbs"
# The directory name cargo deny gives the default database (github.com/RustSec/advisory-db).
cp -r "$db" "$work/dbs/advisory-db-3157b0e258782691"
sed -e '/^\[advisories\]/a db-path = "'"$work"'/dbs"' deny.toml >"$work/deny.toml"
cargo deny --offline --config "$work/deny.toml" check advisories
