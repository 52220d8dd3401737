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
    │   └── TransportError            HTTP-level refusals, answered with an id-less error
    │       ├── SessionRequired       400
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


class TransportError(PeerError):
    """Refused at the HTTP layer; the body is an id-less JSON-RPC error."""

    code = -32600


class SessionRequired(TransportError):
    http_status = 400


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
