"""A real `onmemos serve` for the tests: SQLite, local disk and local compute in a temporary
directory, on a free port, with an admin made by `onmemos admin create-user`.

The binary is `$ONMEMOS_BIN`, else the workspace's `target/debug/onmemos` (or
`$CARGO_TARGET_DIR/debug/onmemos`).
"""

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import onmemos

REPO = Path(__file__).resolve().parents[3]


def binary() -> str:
    if os.environ.get("ONMEMOS_BIN"):
        return os.environ["ONMEMOS_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / "onmemos"
    if not path.exists():
        pytest.exit(f"no onmemos binary at {path}: run `cargo build` or set ONMEMOS_BIN")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.env = {
            k: v for k, v in os.environ.items()
            if k not in ("ONMEMOS_API_KEY", "ONMEMOS_URL", "ONMEMOS_CONFIG")
        }
        self.env["ONMEMOS_DATA_DIR"] = str(directory / "data")
        self.env["ONMEMOS_STATE_DIR"] = str(directory / "state")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def run(self, *args: str) -> dict:
        out = subprocess.run([binary(), "--json", *args], cwd=self.dir, env=self.env,
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [binary(), "serve", "--listen", f"127.0.0.1:{self.port}"],
            cwd=self.dir, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer /healthz in 30 s"
                assert self.process.poll() is None, "the server exited"
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("onmemos"))
    created = srv.run("admin", "create-user", "--email", "py@example.com", "--admin")
    srv.admin_key = created["api_key"]["secret"]
    srv.admin_id = created["user"]["id"]
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def admin(server) -> onmemos.Client:
    client = onmemos.Client(server.url, server.admin_key)
    client.credits().purchase(server.admin_id, 50_000_000, reference="pytest")
    return client
