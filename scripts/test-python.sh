#!/usr/bin/env bash
# The Python package: `pip install ./onmemos-client` into a fresh virtualenv (maturin builds
# the native module, abi3), then its pytest suite against a real `onmemos serve`.
#
# Uses $ONMEMOS_BIN, else target/debug/onmemos (built by the caller, `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/python-venv"
python="${PYTHON:-python3}"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
# Built from the path, as a user would; `[test]` adds pytest and pytest-asyncio.
"$venv/bin/pip" install --quiet "./onmemos-client[test]"
export ONMEMOS_BIN="${ONMEMOS_BIN:-$target/debug/onmemos}"
# From outside the source tree, so `import onmemos` is the installed wheel.
cd "$target"
"$venv/bin/python" -c 'import onmemos, sys; print("onmemos", onmemos.__version__, "from", onmemos.__file__)'
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/onmemos-client/python/tests"
