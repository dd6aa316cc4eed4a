"""The exception hierarchy: one class per error kind of the Rust client, under `OnmemosError`.

Every exception carries `kind`, `message`, `status` (the HTTP status, when the server
answered), `code` (the wire code, `api_key_revoked`), `request_id`, `field` (for validation
errors) and `retry_after` (seconds, when the server asked to wait).
"""

import builtins
from typing import Dict, Optional, Type


class OnmemosError(Exception):
    """The base of every error this package raises."""

    kind = "Unknown"

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        request_id: Optional[str] = None,
        field: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.field = field
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = self.message
        if self.code:
            text += f" [{self.code}]"
        if self.request_id:
            text += f" (request {self.request_id})"
        return text


class AuthenticationError(OnmemosError):
    """No key, or a key that is unknown, revoked or expired (401)."""

    kind = "Authentication"


class PermissionDeniedError(OnmemosError):
    """The key lacks the scope or role the call needs (403)."""

    kind = "PermissionDenied"


class NotFoundError(OnmemosError):
    """The resource does not exist, or is not the caller's (404)."""

    kind = "NotFound"


class ConflictError(OnmemosError):
    """The resource's state does not allow the call (409)."""

    kind = "Conflict"


class ValidationError(OnmemosError, ValueError):
    """The request was malformed; `field` names what was wrong (400, 413, 422)."""

    kind = "Validation"


class InsufficientCreditsError(OnmemosError):
    """The balance cannot cover the call (402)."""

    kind = "InsufficientCredits"


class LimitExceededError(OnmemosError):
    """A quota or a session limit was reached."""

    kind = "LimitExceeded"


class RateLimitedError(OnmemosError):
    """Too many requests; `retry_after` says how long to wait (429)."""

    kind = "RateLimited"


class ServerError(OnmemosError):
    """The server failed (5xx)."""

    kind = "Server"


class TimeoutError(OnmemosError, builtins.TimeoutError):
    """The request took longer than the client's timeout."""

    kind = "Timeout"


class NetworkError(OnmemosError, ConnectionError):
    """The server could not be reached, or the connection was lost."""

    kind = "Network"


class DecodeError(OnmemosError):
    """The server's answer could not be understood."""

    kind = "Decode"


class ConfigurationError(OnmemosError):
    """The client's configuration is wrong (URL, key, `.env` file); raised before any request."""

    kind = "Configuration"


class IoError(OnmemosError):
    """A local file could not be read or written."""

    kind = "Io"


BY_KIND: Dict[str, Type[OnmemosError]] = {
    cls.kind: cls
    for cls in (
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        ValidationError,
        InsufficientCreditsError,
        LimitExceededError,
        RateLimitedError,
        ServerError,
        TimeoutError,
        NetworkError,
        DecodeError,
        ConfigurationError,
        IoError,
    )
}


def from_native(error: BaseException) -> OnmemosError:
    """The exception for a `NativeError` of the Rust client."""
    kind, message, status, code, request_id, field, retry_after = error.args
    cls = BY_KIND.get(kind, OnmemosError)
    return cls(
        message,
        status=status,
        code=code,
        request_id=request_id,
        field=field,
        retry_after=retry_after,
    )
