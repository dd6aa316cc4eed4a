"""The Python client against a real `onmemos serve`: the blocking and asyncio clients, a
session with exec, a storage round trip, pagination, and the exception classes."""

import asyncio

import pytest

import onmemos
from onmemos import _native, models


def test_a_session_runs_commands_and_is_billed(admin):
    ws = admin.workspaces().create("py-session", description="from pytest")
    assert isinstance(ws, models.Workspace)
    assert ws.name == "py-session" and ws.id.startswith("ws_")
    session = admin.sessions().create(ws.id, "python")
    assert isinstance(session, models.Session)
    assert session.status == "running"
    assert isinstance(session.limits, models.SessionLimits)
    out = admin.sessions().exec(session.id, ["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (out.stdout, out.stderr, out.exit_code) == ("out\n", "err\n", 4)
    stopped = admin.sessions().stop(session.id)
    assert stopped.status == "stopped"
    events = admin.sessions().events(session.id)
    assert [e.type for e in events][0] == "created"
    assert events[-1].type == "stopped"
    balance = admin.credits().balance()
    assert isinstance(balance, models.Balance)
    assert balance.available == 50_000_000 - stopped.cost_micros


def test_storage_round_trip(admin, tmp_path):
    ws = admin.workspaces().create("py-files")
    data = bytes(range(256)) * 1000
    stored = admin.storage().upload_bytes(ws.id, "data/blob.bin", data)
    assert stored.size == len(data)
    assert admin.storage().read(ws.id, "data/blob.bin") == data
    source = tmp_path / "notes.txt"
    source.write_text("hello from a file\n")
    admin.storage().upload_file(ws.id, "notes.txt", source)
    dest = tmp_path / "copy.txt"
    admin.storage().download_file(ws.id, "notes.txt", dest)
    assert dest.read_text() == "hello from a file\n"
    assert admin.storage().head(ws.id, "notes.txt").size == 18
    paths = [o.path for o in admin.storage().list_all(ws.id, limit=1)]
    assert paths == ["data/blob.bin", "notes.txt"]
    admin.storage().delete(ws.id, "notes.txt")
    with pytest.raises(onmemos.NotFoundError) as caught:
        admin.storage().read(ws.id, "notes.txt")
    assert caught.value.status == 404 and caught.value.request_id


def test_list_all_reads_every_page(admin):
    names = {f"page-{i}" for i in range(5)}
    for name in sorted(names):
        admin.workspaces().create(name)
    page = admin.workspaces().list(limit=2)
    assert isinstance(page, onmemos.Page) and len(page) == 2 and page.next_cursor
    seen = [w.name for w in admin.workspaces().list_all(limit=2)]
    assert names <= set(seen)
    assert len(seen) == len(set(seen))


async def test_the_async_client_does_the_same(server):
    client = onmemos.AsyncClient(server.url, server.admin_key)
    ws = await client.workspaces().create("py-async")
    session = await client.sessions().create(ws.id, "python")
    outs = await asyncio.gather(
        *(client.sessions().exec(session.id, ["sh", "-c", f"echo {i}"]) for i in range(4))
    )
    assert [o.stdout for o in outs] == [f"{i}\n" for i in range(4)]
    await client.storage().upload_bytes(ws.id, "a.txt", b"async bytes")
    assert await client.storage().read(ws.id, "a.txt") == b"async bytes"
    listed = [w.id async for w in client.workspaces().list_all(limit=1)]
    assert ws.id in listed
    await client.sessions().stop(session.id)
    with pytest.raises(onmemos.NotFoundError):
        await client.sessions().get("ses_00000000000000000000000000000000")


def test_errors_from_the_server_are_their_classes(server, admin):
    with pytest.raises(onmemos.AuthenticationError) as caught:
        onmemos.Client(server.url, "onm_not_a_key", max_attempts=1).users().me()
    assert caught.value.status == 401 and caught.value.code
    member = admin.users().create("member@example.com")
    client = onmemos.Client(server.url, member.api_key.secret)
    with pytest.raises(onmemos.PermissionDeniedError):
        client.credits().purchase(member.user.id, 1)
    ws = client.workspaces().create("broke")
    with pytest.raises(onmemos.InsufficientCreditsError) as caught:
        client.sessions().create(ws.id, "python")
    assert caught.value.status == 402
    with pytest.raises(onmemos.ValidationError) as caught:
        client.workspaces().create("")
    assert caught.value.field == "name"
    assert isinstance(caught.value, ValueError)
    with pytest.raises(onmemos.ConflictError):
        client.workspaces().create("broke")


def test_bad_configuration_fails_before_any_request(monkeypatch, tmp_path):
    with pytest.raises(onmemos.ConfigurationError):
        onmemos.Client("not a url", "onm_x")
    with pytest.raises(onmemos.ConfigurationError):
        onmemos.Client("http://127.0.0.1:1", "key with spaces")
    monkeypatch.delenv("ONMEMOS_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(onmemos.ConfigurationError):
        onmemos.Client.from_env()
    with pytest.raises(onmemos.NetworkError):
        onmemos.Client("http://127.0.0.1:1", "onm_x", max_attempts=1).health()


# The Rust kind of every wire code (tests/error_codes.rs), and the class it must raise.
EXPECTED = {
    "Authentication": onmemos.AuthenticationError,
    "PermissionDenied": onmemos.PermissionDeniedError,
    "NotFound": onmemos.NotFoundError,
    "Conflict": onmemos.ConflictError,
    "Validation": onmemos.ValidationError,
    "InsufficientCredits": onmemos.InsufficientCreditsError,
    "LimitExceeded": onmemos.LimitExceededError,
    "RateLimited": onmemos.RateLimitedError,
    "Server": onmemos.ServerError,
    "Timeout": onmemos.TimeoutError,
}


@pytest.mark.parametrize("code", _native.wire_codes())
def test_every_wire_code_raises_its_class(code):
    from onmemos.errors import from_native

    body = f'{{"code": "{code}", "message": "m", "request_id": "req_9"}}'
    native = _native.error_from_response(400, body)
    error = from_native(native)
    kind = native.args[0]
    assert type(error) is EXPECTED[kind], (code, kind)
    assert isinstance(error, onmemos.OnmemosError)
    assert (error.code, error.request_id, error.status) == (code, "req_9", 400)


def test_every_kind_has_its_own_class():
    from onmemos.errors import BY_KIND

    assert len(set(BY_KIND.values())) == len(BY_KIND) == 14
    assert all(issubclass(c, onmemos.OnmemosError) for c in BY_KIND.values())


def test_the_models_match_the_servers_openapi_document(server):
    """models.py is generated: a server whose API changed fails this until it is regenerated
    (`python gen_models.py openapi.json > onmemos/models.py`)."""
    import json
    import sys
    import urllib.request

    from conftest import REPO

    package = REPO / "onmemos-client" / "python"
    sys.path.insert(0, str(package))
    try:
        from gen_models import Generator
    finally:
        sys.path.remove(str(package))
    with urllib.request.urlopen(f"{server.url}/openapi.json") as answer:
        document = json.load(answer)
    committed = (package / "onmemos" / "models.py").read_text()
    assert Generator(document).render() == committed


def test_the_quickstart_example_runs(server, admin):
    """examples/python/quickstart.py, as a user would run it, against this server."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "ONMEMOS_URL": server.url, "ONMEMOS_API_KEY": server.admin_key}
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / "quickstart.py")],
        env=env, capture_output=True, text=True, timeout=120, cwd=server.dir, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "exec: sum of 4 numbers: 10" in run.stdout
    assert "as expected: NotFoundError (404" in run.stdout
