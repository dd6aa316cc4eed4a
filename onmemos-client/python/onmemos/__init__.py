"""OnmemOS: metered cloud workspaces, from Python.

    import onmemos

    client = onmemos.Client.from_env()          # ONMEMOS_URL, ONMEMOS_API_KEY or .env
    ws = client.workspaces().create("research")
    s = client.sessions().create(ws.id, "python")
    print(client.sessions().exec(s.id, ["python3", "-c", "print(6 * 7)"]).stdout)

`AsyncClient` has the same methods as awaitables. Every error is an `OnmemosError`, of the
subclass naming its kind (`NotFoundError`, `InsufficientCreditsError`, …).
"""

import atexit

from . import _native, models
from ._client import AsyncClient, AsyncShell, Client, RetryPolicy, Shell, ShellEvent
from ._native import __version__
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    DecodeError,
    InsufficientCreditsError,
    IoError,
    LimitExceededError,
    NetworkError,
    NotFoundError,
    OnmemosError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from .models import Page

# Awaitables still running when the program ends are aborted, and the runtime's threads let go
# of Python before the interpreter finalizes.
atexit.register(_native.quiesce)

__all__ = [
    "AsyncClient",
    "AsyncShell",
    "AuthenticationError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "DecodeError",
    "InsufficientCreditsError",
    "IoError",
    "LimitExceededError",
    "NetworkError",
    "NotFoundError",
    "OnmemosError",
    "Page",
    "PermissionDeniedError",
    "RateLimitedError",
    "RetryPolicy",
    "ServerError",
    "Shell",
    "ShellEvent",
    "TimeoutError",
    "ValidationError",
    "__version__",
    "models",
]
