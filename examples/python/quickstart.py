"""Quickstart with the Python client: start a session, run a command in it, upload a file that
the session reads, stop it, and read the bill; then the same calls with asyncio.

    pip install ./onmemos-client
    ONMEMOS_URL=http://127.0.0.1:8080 ONMEMOS_API_KEY=onm_… python examples/python/quickstart.py

The key's user needs some credits (`onmemos credits grant`).
"""

import asyncio
import os

import onmemos


def credits(micros: int) -> str:
    return f"{micros / 1e6:.6f}"


def main() -> None:
    client = onmemos.Client.from_env()
    print(f"server {client.base_url}")

    ws = client.workspaces().create(f"py-quickstart-{os.getpid()}")
    # On local compute over local storage, a session sees the workspace's files under files/.
    stored = client.storage().upload_bytes(ws.id, "data/numbers.txt", b"1\n2\n3\n4\n")
    print(f"uploaded {stored.path} ({stored.size} bytes)")

    session = client.sessions().create(ws.id, "python", limits={"max_duration_secs": 600})
    print(f"session {session.id} is {session.status} at "
          f"{credits(session.rate_micros_per_hour)} credits/h")
    try:
        out = client.sessions().exec(
            session.id,
            ["awk", '{ s += $1 } END { print "sum of " NR " numbers: " s }',
             "files/data/numbers.txt"],
        )
        print(f"exec: {out.stdout}", end="")
        assert out.exit_code == 0, out.stderr
        assert "sum of 4 numbers: 10" in out.stdout
    finally:
        stopped = client.sessions().stop(session.id)
    print(f"stopped ({stopped.stop_reason}); it cost {credits(stopped.cost_micros)} credits")

    balance = client.credits().balance()
    print(f"balance: {credits(balance.available)} credits available")
    for t in client.credits().transfers_all(limit=50):
        print(f"  {t.id} {t.kind:<10} {credits(t.amount):>12} credits  {t.reference or ''}")

    # Errors are exceptions of their kind.
    try:
        client.sessions().get("ses_00000000000000000000000000000000")
    except onmemos.NotFoundError as e:
        print(f"as expected: {type(e).__name__} ({e.status}, request {e.request_id})")

    asyncio.run(concurrently(ws.id))


async def concurrently(workspace: str) -> None:
    """The asyncio client: three uploads at once, then the listing."""
    client = onmemos.AsyncClient.from_env()
    await asyncio.gather(*(
        client.storage().upload_bytes(workspace, f"async/{i}.txt", f"file {i}".encode())
        for i in range(3)
    ))
    paths = [o.path async for o in client.storage().list_all(workspace, prefix="async/")]
    print(f"async uploads: {paths}")
    assert paths == ["async/0.txt", "async/1.txt", "async/2.txt"]


if __name__ == "__main__":
    main()
