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


def test_streams_and_the_shell(admin):
    ws = admin.workspaces().create("py-streams")
    session = admin.sessions().create(ws.id, "python")
    lines = list(admin.sessions().exec_stream(
        session.id, ["sh", "-c", "echo one; echo two >&2; sleep 0.2; echo three; exit 3"]))
    assert all(isinstance(line, models.ExecStreamLine) for line in lines)
    assert "".join(l.data for l in lines if l.type == "stdout") == "one\nthree\n"
    assert "".join(l.data for l in lines if l.type == "stderr") == "two\n"
    assert (lines[-1].type, lines[-1].exit_code) == ("exit", 3)

    shell = admin.shell(session.id, rows=30, cols=100)
    shell.send("echo from-$((6*7))\n")
    seen = b""
    for event in shell:
        if event.kind == "output":
            seen += event.data
        if b"from-42" in seen:
            break
    assert b"from-42" in seen
    shell.resize(40, 120)

    follow = admin.sessions().follow_events(session.id)
    admin.sessions().stop(session.id)
    kinds = [e.type for e in follow]
    assert kinds[0] == "created" and kinds[-1] == "stopped", kinds
    # The shell ends with the session: an exit frame naming the reason, then the end.
    frames = [e.frame for e in shell if e.kind == "control"]
    assert {"type": "exit", "reason": "user"} in frames, frames
    assert shell.next() is None
    paged = [e.seq for e in admin.sessions().events_all(session.id, limit=1)]
    assert paged == [e.seq for e in admin.sessions().events(session.id)]


def test_transfers_report_progress(admin, tmp_path):
    ws = admin.workspaces().create("py-progress")
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * 40_000)
    calls = []
    admin.storage().upload_file(ws.id, "big.bin", source,
                                progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (10_240_000, 10_240_000), calls[-3:]
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    downloaded = []
    admin.storage().download_file(ws.id, "big.bin", tmp_path / "copy.bin",
                                  progress=lambda done, total: downloaded.append(done))
    assert downloaded[-1] == 10_240_000
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


def test_resumable_uploads_report_their_id_and_progress(admin, tmp_path):
    """The resuming itself is tested in Rust (tests/e2e.rs, an interrupted `storage cp`); here,
    that Python gets the upload id before the parts go, the progress, and `resume`."""
    ws = admin.workspaces().create("py-resumable")
    source = tmp_path / "parts.bin"
    data = bytes(range(256)) * 80_000  # 20 MiB: several parts
    source.write_bytes(data)
    ids, done = [], []
    stored = admin.storage().upload_file_resumable(
        ws.id, "parts.bin", source, on_started=ids.append,
        progress=lambda n, total: done.append((n, total)))
    assert stored.size == len(data) and len(ids) == 1 and ids[0].startswith("upl_")
    assert done[0] == (0, len(data)) and done[-1] == (len(data), len(data))
    # The id of a finished upload is gone from the server: resuming it starts a new one.
    again = admin.storage().upload_file_resumable(ws.id, "parts.bin", source, resume=ids[0],
                                                  on_started=ids.append)
    assert again.size == len(data) and len(ids) == 2 and ids[1] != ids[0]
    assert admin.storage().read(ws.id, "parts.bin") == data


def test_retry_policies_are_checked(server):
    policy = onmemos.RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.1,
                                 total_budget=1, jitter=False)
    assert onmemos.Client(server.url, server.admin_key, retry=policy).health().status == "ok"
    with pytest.raises(onmemos.ConfigurationError) as caught:
        onmemos.Client(server.url, server.admin_key, retry=onmemos.RetryPolicy(max_delay=-1))
    assert "max_delay" in str(caught.value)
    with pytest.raises(onmemos.ConfigurationError):
        onmemos.Client(server.url, server.admin_key, timeout=0)
    client = onmemos.Client("http://127.0.0.1:1", "onm_x", retry=onmemos.RetryPolicy.none())
    with pytest.raises(onmemos.NetworkError):
        client.health()


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
    lines = [l async for l in client.sessions().exec_stream(session.id, ["sh", "-c", "exit 5"])]
    assert lines[-1].exit_code == 5
    shell = await client.shell(session.id)
    await shell.send(b"echo async-$((2+3))\n")
    seen = b""
    async for event in shell:
        seen += event.data or b""
        if b"async-5" in seen:
            break
    assert b"async-5" in seen
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


EXIT_SCRIPT = """
import asyncio, os, sys, onmemos

async def main():
    c = onmemos.AsyncClient(sys.argv[1], sys.argv[2])
    ws = await c.workspaces().create(f"exit-{os.getpid()}")
    await asyncio.gather(*(c.storage().upload_bytes(ws.id, f"{i}", b"x") for i in range(3)))
    # Left running when the program ends.
    for i in range(3):
        asyncio.ensure_future(c.storage().upload_bytes(ws.id, f"late-{i}", b"y" * 100_000))
    await asyncio.sleep(0)

asyncio.run(main())
"""


def test_programs_using_the_async_client_exit_cleanly(server, tmp_path):
    """The runtime's threads let go of Python before the interpreter finalizes: without that,
    about one exit in five crashed (SIGSEGV) as a thread completed an awaitable."""
    import subprocess
    import sys

    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT)
    codes = [
        subprocess.run([sys.executable, str(script), server.url, server.admin_key],
                       capture_output=True, timeout=60, check=False).returncode
        for _ in range(25)
    ]
    assert codes == [0] * 25, codes


async def test_cancelling_an_awaitable_stops_its_work(server, admin):
    client = onmemos.AsyncClient(server.url, server.admin_key)
    ws = await client.workspaces().create("py-cancel")
    session = await client.sessions().create(ws.id, "python")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.sessions().exec(session.id, ["sleep", "5"]), 0.3)
    # The request was dropped with its task, not left running for its five seconds.
    for _ in range(100):
        if _native.in_flight() == 0:
            break
        await asyncio.sleep(0.01)
    assert _native.in_flight() == 0
    await client.sessions().stop(session.id)
