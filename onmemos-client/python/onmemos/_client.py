"""`Client` (blocking) and `AsyncClient` (asyncio), over the Rust client.

Both have the Rust client's resources and method names: `client.sessions().create(...)`.
Every call of a `Client` blocks the calling thread (not the interpreter); every call of an
`AsyncClient` returns an awaitable. Both share the Rust client's retries, timeouts and errors.
"""

import json
from contextlib import contextmanager
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Union

from . import _native, models
from .errors import from_native
from .models import Page

Convert = Callable[[Any], Any]


@contextmanager
def _raising() -> Iterator[None]:
    """Raises the native client's errors as their `OnmemosError` subclasses."""
    try:
        yield
    except _native.NativeError as e:
        raise from_native(e) from None


def _args(**fields: Any) -> Dict[str, Any]:
    """The fields that are set."""
    return {k: v for k, v in fields.items() if v is not None}


def _model(cls: Any) -> Convert:
    return lambda text: cls.from_wire(json.loads(text))


def _models(cls: Any) -> Convert:
    return lambda text: [cls.from_wire(v) for v in json.loads(text)]


def _page(cls: Any) -> Convert:
    def convert(text: str) -> Page:
        data = json.loads(text)
        return Page([cls.from_wire(v) for v in data["items"]], data.get("next_cursor"))

    return convert


def _none(_text: Any) -> None:
    return None


def _raw(value: Any) -> Any:
    return value


class _Resource:
    def __init__(self, client: "_Base") -> None:
        self._c = client

    def _call(self, op: str, convert: Convert, data: Optional[bytes] = None, **args: Any) -> Any:
        return self._c._run(op, args, convert, data, None)


class Workspaces(_Resource):
    """`/v1/workspaces`."""

    def create(self, name: str, description: Optional[str] = None,
               env: Optional[Dict[str, str]] = None):
        """Creates a workspace."""
        request = _args(name=name, description=description, env=env)
        return self._call("workspaces.create", _model(models.Workspace), request=request)

    def list(self, limit: Optional[int] = None, cursor: Optional[str] = None):
        """One page of the caller's workspaces."""
        return self._call("workspaces.list", _page(models.Workspace),
                          params=_args(limit=limit, cursor=cursor))

    def list_all(self, limit: Optional[int] = None):
        """Every workspace of the caller, fetched a page at a time as it is iterated."""
        return self._c._stream("workspaces.list_all", _model(models.Workspace),
                               params=_args(limit=limit))

    def get(self, id: str):
        """One workspace."""
        return self._call("workspaces.get", _model(models.Workspace), id=id)

    def update(self, id: str, name: Optional[str] = None, description: Optional[str] = None,
               env: Optional[Dict[str, str]] = None):
        """Changes a workspace (fields left `None` are kept)."""
        request = _args(name=name, description=description, env=env)
        return self._call("workspaces.update", _model(models.Workspace), id=id, request=request)

    def delete(self, id: str):
        """Deletes a workspace."""
        return self._call("workspaces.delete", _none, id=id)


class Templates(_Resource):
    """`/v1/templates`."""

    def list(self, category: Optional[str] = None, tag: Optional[str] = None,
             sort: Optional[str] = None, limit: Optional[int] = None,
             cursor: Optional[str] = None):
        """One page of the templates the caller can see."""
        params = _args(category=category, tag=tag, sort=sort, limit=limit, cursor=cursor)
        return self._call("templates.list", _page(models.Template), params=params)

    def list_all(self, category: Optional[str] = None, tag: Optional[str] = None,
                 limit: Optional[int] = None):
        """Every template matching the filters, a page at a time."""
        return self._c._stream("templates.list_all", _model(models.Template),
                               params=_args(category=category, tag=tag, limit=limit))

    def get(self, id_or_name: str):
        """A template by id (`tpl_…`) or name."""
        return self._call("templates.get", _model(models.Template), id=id_or_name)

    def create(self, **request: Any):
        """Creates a custom template (the fields of `CreateTemplate`)."""
        return self._call("templates.create", _model(models.Template), request=request)

    def delete(self, id_or_name: str):
        """Deletes a custom template."""
        return self._call("templates.delete", _none, id=id_or_name)


class ApiKeys(_Resource):
    """`/v1/api-keys`."""

    def create(self, name: str, scopes: Optional[List[str]] = None,
               expires_at: Optional[str] = None):
        """Creates a key for the caller; the answer holds its secret."""
        request = _args(name=name, scopes=scopes, expires_at=expires_at)
        return self._call("api_keys.create", _model(models.CreatedApiKey), request=request)

    def list(self, limit: Optional[int] = None, cursor: Optional[str] = None):
        """One page of the caller's keys."""
        return self._call("api_keys.list", _page(models.ApiKey),
                          params=_args(limit=limit, cursor=cursor))

    def list_all(self, limit: Optional[int] = None):
        """Every key of the caller, a page at a time."""
        return self._c._stream("api_keys.list_all", _model(models.ApiKey),
                               params=_args(limit=limit))

    def get(self, id: str):
        """One of the caller's keys."""
        return self._call("api_keys.get", _model(models.ApiKey), id=id)

    def revoke(self, id: str):
        """Revokes one of the caller's keys."""
        return self._call("api_keys.revoke", _model(models.ApiKey), id=id)


class Users(_Resource):
    """`/v1/users` and `/v1/me`."""

    def me(self):
        """The caller's own user."""
        return self._call("users.me", _model(models.User))

    def create(self, email: str, name: Optional[str] = None, role: Optional[str] = None):
        """Creates a user and their first key (admin)."""
        request = _args(email=email, name=name, role=role)
        return self._call("users.create", _model(models.CreatedUser), request=request)

    def list(self, limit: Optional[int] = None, cursor: Optional[str] = None):
        """One page of users (admin)."""
        return self._call("users.list", _page(models.User),
                          params=_args(limit=limit, cursor=cursor))

    def list_all(self, limit: Optional[int] = None):
        """Every user (admin), a page at a time."""
        return self._c._stream("users.list_all", _model(models.User), params=_args(limit=limit))

    def get(self, id: str):
        """A user."""
        return self._call("users.get", _model(models.User), id=id)


class Sessions(_Resource):
    """`/v1/sessions`."""

    def create(self, workspace_id: str, template: str, limits: Optional[Dict[str, Any]] = None,
               placement: Optional[str] = None, env: Optional[Dict[str, str]] = None):
        """Starts a session: it is `running` when this returns."""
        request = _args(workspace_id=workspace_id, template=template, limits=limits,
                        placement=placement, env=env)
        return self._call("sessions.create", _model(models.Session), request=request)

    def list(self, workspace_id: Optional[str] = None, status: Optional[str] = None,
             template_id: Optional[str] = None, limit: Optional[int] = None,
             cursor: Optional[str] = None):
        """One page of the caller's sessions."""
        params = _args(workspace_id=workspace_id, status=status, template_id=template_id,
                       limit=limit, cursor=cursor)
        return self._call("sessions.list", _page(models.Session), params=params)

    def list_all(self, workspace_id: Optional[str] = None, status: Optional[str] = None,
                 limit: Optional[int] = None):
        """Every session matching the filters, a page at a time."""
        params = _args(workspace_id=workspace_id, status=status, limit=limit)
        return self._c._stream("sessions.list_all", _model(models.Session), params=params)

    def get(self, id: str):
        """One session."""
        return self._call("sessions.get", _model(models.Session), id=id)

    def stop(self, id: str):
        """Stops a session, charging it up to now."""
        return self._call("sessions.stop", _model(models.Session), id=id)

    def delete(self, id: str):
        """Deletes a session that has ended."""
        return self._call("sessions.delete", _none, id=id)

    def exec(self, id: str, command: List[str], env: Optional[Dict[str, str]] = None,
             stdin: Optional[str] = None, timeout_secs: Optional[int] = None):
        """Runs a command (no shell: `["sh", "-c", "…"]` for one) and returns its output."""
        request = _args(command=command, env=env, stdin=stdin, timeout_secs=timeout_secs)
        return self._call("sessions.exec", _model(models.ExecOutput), id=id, command=request)

    def events(self, id: str, after: Optional[int] = None, limit: Optional[int] = None):
        """The session's events, oldest first."""
        return self._call("sessions.events", _models(models.SessionEvent), id=id,
                          params=_args(after=after, limit=limit))

    def events_all(self, id: str, after: Optional[int] = None, limit: Optional[int] = None):
        """Every recorded event after `after`, fetched `limit` at a time as it is iterated."""
        return self._c._stream("sessions.events_all", _model(models.SessionEvent), id=id,
                               params=_args(after=after, limit=limit))

    def follow_events(self, id: str, after: Optional[int] = None):
        """The session's events after `after`, then new ones as they happen, until its final
        one (an iterator; an async iterator on `AsyncClient`)."""
        return self._c._stream("sessions.follow_events", _model(models.SessionEvent), id=id,
                               after=after)

    def exec_stream(self, id: str, command: List[str], env: Optional[Dict[str, str]] = None,
                    stdin: Optional[str] = None, timeout_secs: Optional[int] = None):
        """Runs a command and yields its output as it comes (`ExecStreamLine`s: `stdout`,
        `stderr`, then `exit` with `exit_code`)."""
        request = _args(command=command, env=env, stdin=stdin, timeout_secs=timeout_secs)
        return self._c._stream("sessions.exec_stream", _model(models.ExecStreamLine), id=id,
                               command=request)


class Estimates(_Resource):
    """`/v1/estimates`."""

    def quote(self, **request: Any):
        """Quotes one configuration (the fields of `EstimateRequest`)."""
        return self._call("estimates.quote", _model(models.Estimate), request=request)

    def compare(self, configurations: List[Dict[str, Any]]):
        """Quotes several configurations side by side."""
        return self._call("estimates.compare", _model(models.Comparison),
                          request={"configurations": configurations})


class Credits(_Resource):
    """`/v1/credits` and `/v1/pricing`."""

    def balance(self):
        """The caller's balance."""
        return self._call("credits.balance", _model(models.Balance))

    def transfers(self, kind: Optional[str] = None, limit: Optional[int] = None,
                  cursor: Optional[str] = None):
        """One page of the caller's transfers, oldest first."""
        return self._call("credits.transfers", _page(models.Transfer),
                          params=_args(kind=kind, limit=limit, cursor=cursor))

    def transfers_all(self, kind: Optional[str] = None, limit: Optional[int] = None):
        """Every transfer of the caller, oldest first, a page at a time."""
        return self._c._stream("credits.transfers_all", _model(models.Transfer),
                               params=_args(kind=kind, limit=limit))

    def purchase(self, user_id: str, amount_micros: int, priority: Optional[int] = None,
                 expires_at: Optional[str] = None, reference: Optional[str] = None):
        """Credits a user with purchased credits (admin)."""
        request = _args(user_id=user_id, amount_micros=amount_micros, priority=priority,
                        expires_at=expires_at, reference=reference)
        return self._call("credits.purchase", _model(models.Transfer), request=request)

    def grant(self, user_id: str, amount_micros: int, priority: Optional[int] = None,
              expires_at: Optional[str] = None, reference: Optional[str] = None):
        """Credits a user with promotional credits (admin)."""
        request = _args(user_id=user_id, amount_micros=amount_micros, priority=priority,
                        expires_at=expires_at, reference=reference)
        return self._call("credits.grant", _model(models.Transfer), request=request)

    def pricing(self):
        """The price book."""
        return self._call("credits.pricing", _model(models.PriceBook))


class Storage(_Resource):
    """A workspace's files."""

    def upload_bytes(self, workspace: str, path: str, data: bytes):
        """Uploads `data` to `path`."""
        return self._call("storage.upload_bytes", _model(models.StoredObject), data=bytes(data),
                          workspace=workspace, path=path)

    def upload_file(self, workspace: str, path: str, file: str,
                    progress: Optional[Callable[[int, Optional[int]], None]] = None):
        """Uploads the local file `file` to `path`, streaming it; `progress(done, total)` is
        called as bytes go out."""
        return self._c._run("storage.upload_file",
                            {"workspace": workspace, "path": path, "file": str(file)},
                            _model(models.StoredObject), None, progress)

    def upload_file_resumable(self, workspace: str, path: str, file: str,
                              resume: Optional[str] = None,
                              on_started: Optional[Callable[[str], None]] = None,
                              progress: Optional[Callable[[int, Optional[int]], None]] = None):
        """Uploads `file` in parts, so an interruption costs at most the parts in flight.
        `on_started(upload_id)` is called before any part is sent; pass that id as `resume`
        later to continue, sending only the parts the server does not have."""
        args = _args(workspace=workspace, path=path, file=str(file), resume=resume)
        return self._c._run("storage.upload_file_resumable", args, _model(models.StoredObject),
                            None, progress, on_started)

    def read(self, workspace: str, path: str):
        """The object at `path`, as bytes."""
        return self._call("storage.read", _raw, workspace=workspace, path=path)

    def download_file(self, workspace: str, path: str, dest: str, resume: bool = False,
                      progress: Optional[Callable[[int, Optional[int]], None]] = None):
        """Downloads `path` into the local file `dest` (continuing a `dest.part` with
        `resume`); `progress(done, total)` is called as bytes arrive."""
        args = {"workspace": workspace, "path": path, "dest": str(dest), "resume": resume}
        return self._c._run("storage.download_file", args, _model(models.StoredObject), None,
                            progress)

    def head(self, workspace: str, path: str):
        """The object's size, etag and date, without its bytes."""
        return self._call("storage.head", _model(models.StoredObject), workspace=workspace,
                          path=path)

    def delete(self, workspace: str, path: str):
        """Deletes the object (deleting a missing one is not an error)."""
        return self._call("storage.delete", _none, workspace=workspace, path=path)

    def list(self, workspace: str, prefix: Optional[str] = None, limit: Optional[int] = None,
             cursor: Optional[str] = None):
        """One page of the workspace's objects, in path order."""
        return self._call("storage.list", _page(models.StoredObject), workspace=workspace,
                          params=_args(prefix=prefix, limit=limit, cursor=cursor))

    def list_all(self, workspace: str, prefix: Optional[str] = None, limit: Optional[int] = None):
        """Every object of the workspace under `prefix`, a page at a time."""
        return self._c._stream("storage.list_all", _model(models.StoredObject),
                               workspace=workspace, params=_args(prefix=prefix, limit=limit))

    def presign(self, workspace: str, path: str, method: str = "GET",
                expires_in_secs: Optional[int] = None):
        """A URL allowing `GET` or `PUT` of one object straight at the object store."""
        request = _args(path=path, method=method, expires_in_secs=expires_in_secs)
        return self._call("storage.presign", _model(models.PresignedUrl), workspace=workspace,
                          request=request)

    def usage(self, workspace: str):
        """What the workspace stores, its quota and its storage bill."""
        return self._call("storage.usage", _model(models.StorageUsage), workspace=workspace)


class Optimizer(_Resource):
    """`/v1/optimizer`."""

    def recommendations(self, request: Dict[str, Any]):
        """Recommendations for a cluster snapshot under a policy (an `OptimizationRequest`)."""
        return self._call("optimizer.recommendations", _model(models.OptimizationReport),
                          request=request)


class RetryPolicy:
    """How calls are retried (the Rust client's `RetryPolicy`): `max_attempts` tries in all,
    waits from `initial_delay` seconds doubling up to `max_delay`, with `jitter`, and at most
    `total_budget` seconds of waiting over one call. Fields left `None` keep the defaults
    (4 tries, 0.1 s, 5 s, 30 s, jitter on). `RetryPolicy.none()` tries once."""

    def __init__(self, max_attempts: Optional[int] = None, initial_delay: Optional[float] = None,
                 max_delay: Optional[float] = None, total_budget: Optional[float] = None,
                 jitter: Optional[bool] = None) -> None:
        self.max_attempts = max_attempts
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.total_budget = total_budget
        self.jitter = jitter

    @classmethod
    def none(cls) -> "RetryPolicy":
        """Every call is tried once."""
        return cls(max_attempts=1)

    def _json(self) -> str:
        return json.dumps(_args(**vars(self)))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"RetryPolicy({shown})"


class _Base:
    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *,
                 timeout: Optional[float] = None, retry: Optional[RetryPolicy] = None,
                 max_attempts: Optional[int] = None, _from_env: bool = False) -> None:
        """A client of `base_url` with `api_key`. `timeout` bounds each request (seconds,
        30 by default); `retry` is a `RetryPolicy` (`max_attempts` alone is a shorthand)."""
        if retry is None and max_attempts is not None:
            retry = RetryPolicy(max_attempts=max_attempts)
        with _raising():
            self._native = _native.NativeClient(base_url, api_key, timeout,
                                                retry._json() if retry else None, _from_env)

    @classmethod
    def from_env(cls, *, timeout: Optional[float] = None, retry: Optional[RetryPolicy] = None,
                 max_attempts: Optional[int] = None):
        """A client configured by `ONMEMOS_URL` and `ONMEMOS_API_KEY`, from the environment
        or a `.env` file."""
        return cls(timeout=timeout, retry=retry, max_attempts=max_attempts, _from_env=True)

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self._native.base_url

    def workspaces(self) -> Workspaces:
        """Workspaces."""
        return Workspaces(self)

    def templates(self) -> Templates:
        """Templates."""
        return Templates(self)

    def api_keys(self) -> ApiKeys:
        """The caller's API keys."""
        return ApiKeys(self)

    def users(self) -> Users:
        """Users (mostly admin)."""
        return Users(self)

    def sessions(self) -> Sessions:
        """Sessions: lifecycle, exec, events."""
        return Sessions(self)

    def estimates(self) -> Estimates:
        """Cost estimates."""
        return Estimates(self)

    def credits(self) -> Credits:
        """Credits: balance, transfers, purchases and grants, prices."""
        return Credits(self)

    def storage(self) -> Storage:
        """Workspace storage."""
        return Storage(self)

    def optimizer(self) -> Optimizer:
        """The cost optimizer."""
        return Optimizer(self)

    def health(self):
        """`GET /healthz`."""
        return self._run("health", {}, _model(models.Health), None, None)

    def ready(self):
        """`GET /readyz` (never retried)."""
        return self._run("ready", {}, _model(models.Health), None, None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


class Client(_Base):
    """A blocking client: every method returns its answer; `list_all` and the streams are
    iterators."""

    def _run(self, op: str, args: Dict[str, Any], convert: Convert, data: Optional[bytes],
             progress: Optional[Callable[..., None]] = None,
             started: Optional[Callable[..., None]] = None):
        with _raising():
            answer = self._native.call(op, json.dumps(args), data, progress, started)
        return convert(answer)

    def _stream(self, op: str, convert: Convert, **args: Any) -> Iterator[Any]:
        with _raising():
            stream = self._native.stream(op, json.dumps(args))
            while (item := stream.next()) is not None:
                yield convert(item)

    def shell(self, session_id: str, rows: int = 24, cols: int = 80,
              reconnect_secs: float = 60.0) -> "Shell":
        """Opens the terminal of a running session; a lost connection is reconnected for up
        to `reconnect_secs`."""
        with _raising():
            return Shell(self._native.shell(session_id, rows, cols, reconnect_secs))


class AsyncClient(_Base):
    """An asyncio client: every method returns an awaitable; `list_all` and the streams are
    async iterators."""

    async def _run(self, op: str, args: Dict[str, Any], convert: Convert,
                   data: Optional[bytes], progress: Optional[Callable[..., None]] = None,
                   started: Optional[Callable[..., None]] = None):
        with _raising():
            answer = await self._native.call_async(op, json.dumps(args), data, progress,
                                                   started)
        return convert(answer)

    async def _stream(self, op: str, convert: Convert, **args: Any) -> AsyncIterator[Any]:
        with _raising():
            stream = await self._native.stream_async(op, json.dumps(args))
            while (item := await stream.next_async()) is not None:
                yield convert(item)

    async def shell(self, session_id: str, rows: int = 24, cols: int = 80,
                    reconnect_secs: float = 60.0) -> "AsyncShell":
        """Opens the terminal of a running session; a lost connection is reconnected for up
        to `reconnect_secs`."""
        with _raising():
            return AsyncShell(await self._native.shell_async(session_id, rows, cols,
                                                             reconnect_secs))


class ShellEvent:
    """What arrives from a terminal: `kind` is `"output"` (`data`: bytes), `"control"`
    (`frame`: a dict: status, credits, notice, exit, error) or `"reconnected"` (`attempts`)."""

    def __init__(self, kind: str, value: Any) -> None:
        self.kind = kind
        self.data: Optional[bytes] = value if kind == "output" else None
        self.frame: Optional[Dict[str, Any]] = json.loads(value) if kind == "control" else None
        self.attempts: Optional[int] = value if kind == "reconnected" else None

    def __repr__(self) -> str:
        value = {"output": self.data, "control": self.frame, "reconnected": self.attempts}
        return f"ShellEvent({self.kind!r}, {value[self.kind]!r})"


def _data(data: Union[bytes, str]) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


class Shell:
    """An open terminal (blocking). Iterate it, or call `next()`, for `ShellEvent`s until it
    ends."""

    def __init__(self, native: Any) -> None:
        self._native = native

    def send(self, data: Union[bytes, str]) -> None:
        """Sends keyboard input."""
        with _raising():
            self._native.send(_data(data))

    def resize(self, rows: int, cols: int) -> None:
        """Resizes the terminal."""
        with _raising():
            self._native.resize(rows, cols)

    def next(self) -> Optional[ShellEvent]:
        """The next event; `None` once the terminal ended."""
        with _raising():
            event = self._native.next()
        return None if event is None else ShellEvent(*event)

    def __iter__(self) -> Iterator[ShellEvent]:
        while (event := self.next()) is not None:
            yield event


class AsyncShell:
    """An open terminal (asyncio). `async for event in shell` until it ends."""

    def __init__(self, native: Any) -> None:
        self._native = native

    async def send(self, data: Union[bytes, str]) -> None:
        """Sends keyboard input."""
        with _raising():
            await self._native.send_async(_data(data))

    async def resize(self, rows: int, cols: int) -> None:
        """Resizes the terminal."""
        with _raising():
            await self._native.resize_async(rows, cols)

    async def next(self) -> Optional[ShellEvent]:
        """The next event; `None` once the terminal ended."""
        with _raising():
            event = await self._native.next_async()
        return None if event is None else ShellEvent(*event)

    def __aiter__(self) -> AsyncIterator[ShellEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ShellEvent]:
        while (event := await self.next()) is not None:
            yield event
