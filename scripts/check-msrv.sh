#!/usr/bin/env bash
# The declared rust-version holds without installing that toolchain (none can be downloaded
# here): no crate in the resolved dependency graph, for every feature, declares a higher
# rust-version, and clippy's `incompatible_msrv` lint (on in the clippy step, which reads
# rust-version) refuses any standard-library API stabilised after it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --all-features --locked | python3 -c '
import json, sys
meta = json.load(sys.stdin)
def version(v):
    return tuple(int(x) for x in (v.split(".") + ["0", "0"])[:3])
members = set(meta["workspace_members"])
ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(ours) != 1 or None in ours:
    sys.exit(f"every workspace crate must declare the same rust-version: {sorted(map(str, ours))}")
msrv = ours.pop()
used = {n["id"] for n in meta["resolve"]["nodes"]}
newer = sorted(
    "%s %s needs %s" % (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] in used and p.get("rust_version") and version(p["rust_version"]) > version(msrv)
)
if newer:
    print(f"dependencies need a newer Rust than the declared rust-version {msrv}:", file=sys.stderr)
    print("\n".join(newer), file=sys.stderr)
    sys.exit(1)
print(f"ok: no dependency needs a Rust newer than {msrv} ({len(used)} crates)")
'
