"""OnmemOS: metered cloud workspaces, from Python.

    import onmemos

    client = onmemos.Client.from_env()          # ONMEMOS_URL, ONMEMOS_API_KEY or .env
    ws = client.workspaces().create("research")
    s = client.sessions().create(ws.id, "python")
    print(client.sessions().exec(s.id, ["python3", "-c", "print(6 * 7)"]).stdout)

`AsyncClient` has the same methods as awaitables. Every error is an `OnmemosError`, of the
subclass naming its kind (`NotFoundError`, `InsufficientCreditsError`, …).
"""

from . import models
from ._client import AsyncClient, Client
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

__all__ = [
    "AsyncClient",
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
    "ServerError",
    "TimeoutError",
    "ValidationError",
    "__version__",
    "models",
]
