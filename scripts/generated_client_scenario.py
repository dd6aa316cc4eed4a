"""A scenario driven through a client generated from the served OpenAPI document by
openapi-python-client (scripts/test-api.sh): if the document lies about a body, a response or
a type, the generated client fails here.

Reads ONMEMOS_URL and ONMEMOS_API_KEY (a funded member)."""

import io
import os
import sys
import time

from on_mem_os_api_client import AuthenticatedClient
from on_mem_os_api_client.api.sessions import (
    create_session,
    events,
    exec_,
    get_session,
    stop_session,
)
from on_mem_os_api_client.api.storage import get_object, list_objects, put_object
from on_mem_os_api_client.api.workspaces import create_workspace, delete_workspace
from on_mem_os_api_client.models import (
    CreateSession,
    CreateWorkspace,
    ErrorBody,
    ExecCommand,
    Session,
    SessionEventStopped,
)
from on_mem_os_api_client.types import File


def ok(what, answer):
    """The parsed answer, or exit naming what failed."""
    if answer is None or isinstance(answer, ErrorBody):
        sys.exit(f"{what}: {answer!r}")
    return answer


def main():
    client = AuthenticatedClient(
        base_url=os.environ["ONMEMOS_URL"], token=os.environ["ONMEMOS_API_KEY"], timeout=60
    )
    with client:
        ws = ok("create workspace", create_workspace.sync(
            client=client, body=CreateWorkspace(name=f"generated-{os.getpid()}")))

        data = b"hello from a generated client\n\x00\xff binary tail"
        stored = ok("upload", put_object.sync(
            ws.id, "notes/hello.bin", client=client,
            body=File(payload=io.BytesIO(data), mime_type="application/octet-stream")))
        assert stored.size == len(data), stored
        listed = ok("list", list_objects.sync(ws.id, client=client))
        assert [o.path for o in listed.items] == ["notes/hello.bin"], listed
        got = get_object.sync_detailed(ws.id, "notes/hello.bin", client=client)
        assert got.status_code == 200 and got.content == data, got

        session = ok("create session", create_session.sync(
            client=client, body=CreateSession(workspace_id=ws.id, template="python")))
        assert isinstance(session, Session) and session.status.value == "running", session
        out = ok("exec", exec_.sync(session.id, client=client, body=ExecCommand(
            command=["sh", "-c", "cat files/notes/hello.bin | head -c 29; echo; exit 3"])))
        assert out.exit_code == 3, out
        assert out.stdout.startswith("hello from a generated client"), out
        assert out.truncated is False, out

        stopped = ok("stop", stop_session.sync(session.id, client=client))
        assert stopped.stop_reason.value == "user", stopped
        again = ok("get", get_session.sync(session.id, client=client))
        assert again.status.value == "stopped", again

        trail = ok("events", events.sync(session.id, client=client))
        kinds = [type(e).__name__ for e in trail]
        assert kinds[0] == "SessionEventCreated" and kinds[1] == "SessionEventStarted", kinds
        assert isinstance(trail[-1], SessionEventStopped), kinds
        assert trail[-1].cost_micros == again.cost_micros, (trail[-1], again)

        deleted = delete_workspace.sync_detailed(ws.id, client=client)
        assert deleted.status_code == 204, deleted
    print(f"generated client: workspace, upload/download, session, exec, events ({len(kinds)}), stop: ok")


if __name__ == "__main__":
    main()
