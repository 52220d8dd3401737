"""Protocol errors as data: every rejection carries its JSON-RPC code and HTTP status.

The hierarchy::

    McpError                          code, message, data, http_status
    ├── PeerError                     the client broke a rule (4xx)
    │   ├── ParseError                -32700  400  body is not JSON
    │   ├── InvalidRequest            -32600  400  not a JSON-RPC message we accept
    │   ├── MethodNotFound            -32601  404 on the modern path, in-band on legacy
    │   ├── InvalidParams             -32602  400  bad params or request ``_meta``
    │   ├── ResourceNotFound          -32002  in-band (legacy revisions only)
    │   ├── HeaderMismatch            -32020  400  header disagrees with the body
    │   ├── MissingClientCapability   -32021  400
    │   ├── UnsupportedProtocolVersion -32022 400  data: {supported, requested}
    │   ├── LimitExceeded             -32005  429  Retry-After; data: {limit, retryAfterSeconds}
    │   └── TransportError            HTTP-level refusals, answered with an id-less error
    │       ├── SessionRequired       400
    │       ├── Unauthorized          401  with WWW-Authenticate (mcpd.auth)
    │       ├── OriginForbidden       403
    │       ├── SessionNotFound       404
    │       ├── MethodNotAllowed      405
    │       ├── NotAcceptable         406
    │       ├── RequestTimeout        408  body not complete within body_timeout
    │       ├── PayloadTooLarge       413
    │       └── UnsupportedMediaType  415
    └── LocalError                    our side failed (5xx)
        ├── InternalError             -32603  500
        └── ServerUnavailable         -32000  503  draining or full

``http_status`` is the status to answer with when the error rejects the HTTP request as a whole
(before a response has started). Errors raised by a method handler travel in-band in a JSON-RPC
response with status 200, except ``MethodNotFound`` on the modern path (spec: 404 + -32601).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class McpError(Exception):
    """Base of every protocol error; renders to a JSON-RPC ``error`` object."""

    code: ClassVar[int] = -32603
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        # The id of the request this error answers, once the transport knows it.
        self.request_id: str | int | None = None

    def to_error(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` member."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class PeerError(McpError):
    """The client sent something the protocol does not allow."""

    http_status = 400


class ParseError(PeerError):
    code = -32700


class InvalidRequest(PeerError):
    code = -32600


class MethodNotFound(PeerError):
    code = -32601
    http_status = 404


class InvalidParams(PeerError):
    code = -32602


class ResourceNotFound(PeerError):
    code = -32002
    http_status = 404


class HeaderMismatch(PeerError):
    code = -32020


class MissingClientCapability(PeerError):
    code = -32021


class UnsupportedProtocolVersion(PeerError):
    code = -32022

    def __init__(self, requested: object, supported: tuple[str, ...]) -> None:
        super().__init__(
            f"unsupported protocol version {requested!r}; supported: {', '.join(supported)}",
            data={"supported": list(supported), "requested": requested},
        )


class LimitExceeded(PeerError):
    """Over a rate, concurrency or session limit: HTTP 429 with ``Retry-After``.

    ``limit`` names the limit from a small closed set (the metric's label); ``retry_after`` is
    how many seconds until a retry can succeed. -32005 sits in the implementation-defined band
    (-32000..-32019) and is assigned by no MCP revision or draft; it is also what EIP-1474's
    JSON-RPC convention calls "limit exceeded". ``with_code`` gives the class for another code
    (``[limits] error_code``): a class, because ``code`` is a class attribute on every
    ``McpError`` and the transport and metrics read it there.
    """

    code = -32005
    http_status = 429

    def __init__(self, message: str, *, limit: str, retry_after: float) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(
            message, data={"limit": limit, "retryAfterSeconds": self.retry_after_seconds}
        )

    @property
    def retry_after_seconds(self) -> int:
        """``retry_after`` as the whole seconds ``Retry-After`` carries: rounded up, at least 1."""
        return retry_after_seconds(self.retry_after)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers a 429 carries besides the JSON ones."""
        return [(b"retry-after", str(self.retry_after_seconds).encode())]

    @classmethod
    def with_code(cls, code: int) -> type[LimitExceeded]:
        """This error with JSON-RPC ``code`` instead of the default; one class per code."""
        if code == LimitExceeded.code:
            return LimitExceeded
        coded = _CODED.get(code)
        if coded is None:

            class Coded(LimitExceeded):
                pass

            Coded.code = code
            Coded.__name__ = Coded.__qualname__ = "LimitExceeded"
            coded = _CODED[code] = Coded
        return coded


_CODED: dict[int, type[LimitExceeded]] = {}


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds for ``Retry-After``: rounded up (never early), at least 1 (no hot loop)."""
    # A hair of slack so that 2.0000000000000004 (float arithmetic for "2 s") stays 2.
    return max(1, math.ceil(seconds - 1e-9))


class TransportError(PeerError):
    """Refused at the HTTP layer; the body is an id-less JSON-RPC error."""

    code = -32600


class SessionRequired(TransportError):
    http_status = 400


class Unauthorized(TransportError):
    """No valid credentials (401, sent with a ``WWW-Authenticate`` challenge)."""

    http_status = 401


class OriginForbidden(TransportError):
    http_status = 403


class MisdirectedRequest(TransportError):
    http_status = 421


class SessionNotFound(TransportError):
    code = -32001
    http_status = 404


class MethodNotAllowed(TransportError):
    http_status = 405


class NotAcceptable(TransportError):
    http_status = 406


class RequestTimeout(TransportError):
    """The request body did not arrive in time; the connection is closed after the answer."""

    http_status = 408


class PayloadTooLarge(TransportError):
    http_status = 413


class UnsupportedMediaType(TransportError):
    http_status = 415


class LocalError(McpError):
    """Our side failed; never the client's fault."""

    http_status = 500


class InternalError(LocalError):
    code = -32603


class ServerUnavailable(LocalError):
    code = -32000
    http_status = 503
