"""OpenTelemetry traces, optional: the facade the request path calls, and how tracing starts.

Off (the default; ``[tracing] enabled = false``, ``OTEL_SDK_DISABLED=true``, or the ``otel``
extra not installed), the daemon holds ``NO_TRACING``: the hooks in ``Endpoint._answer`` and
``Dispatcher._invoke`` check its ``enabled`` and do nothing else, and nothing imports
opentelemetry. On, ``start`` imports ``mcpd.tracing_otel``, where everything that needs the
SDK lives, and the daemon wraps its main app in ``remember_scope`` so that a request's span
can read the HTTP request it came in (``traceparent`` header, client address).

What is traced (OpenTelemetry MCP semantic conventions): one SERVER span per MCP request that
reaches a method handler, named ``{mcp.method.name} {tool or prompt}``, its parent the
``traceparent`` in the request's ``_meta`` (linked to the one in the HTTP headers), else the
one in the headers; and an INTERNAL ``execute_tool {name}`` span around each tool run, current
while the tool's code runs, so that a plugin's own spans nest under it. Never tool arguments,
results, resource URIs or exception texts (those only with ``[logging] log_arguments``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from mcpd.config import TracingSettings
from mcpd.protocol.jsonrpc import Request

if TYPE_CHECKING:
    from mcpd.transport.app import App
    from mcpd.transport.asgi_io import Receive, Scope
    from mcpd.transport.exchange import Send

log = structlog.get_logger("mcpd.tracing")

Work = Callable[[], Awaitable[dict[str, Any]]]
# (kind, name) -> whether a tool ("tool") or prompt ("prompt") of that name is registered:
# only registered names go into span names, which must stay few.
Registered = Callable[[str, str], bool]

# The HTTP request (ASGI scope) a request's task serves; set by ``remember_scope``. Tasks
# started from the handler (a session's request tasks) inherit it with their context.
HTTP_SCOPE: ContextVar[dict[str, Any] | None] = ContextVar("mcpd_http_scope", default=None)


class Labelled(Protocol):
    @property
    def log_id(self) -> str: ...


class TracedCall(Protocol):
    """What a request span is made of (a ``mcpd.runtime.calls.Call``)."""

    @property
    def request(self) -> Request: ...

    @property
    def revision(self) -> str: ...

    @property
    def session(self) -> Labelled | None: ...


class ToolSpan(Protocol):
    def end(self, outcome: str) -> None:
        """The tool run ended with ``outcome`` (``ok``, ``error``, ``timeout``, ``cancelled``,
        ``input_required``)."""


class Tracing:
    """No tracing: what the daemon holds while tracing is off. Hooks check ``enabled``."""

    enabled = False

    def server(self, call: TracedCall, work: Work) -> Work:
        """``work`` (the request's handler) inside the request's SERVER span."""
        return work

    def tool(self, name: str) -> ToolSpan:
        """Start the span of a run of tool ``name``, current until its ``end``."""
        raise NotImplementedError("tracing is off")

    def failed(self, error: BaseException) -> None:
        """Plugin code failed with ``error`` (contained): record it on the current span."""

    def shutdown(self) -> None:
        """Export what is left (blocking: run it in a thread, under a deadline)."""


NO_TRACING = Tracing()


def start(
    settings: TracingSettings, *, registered: Registered, with_messages: bool = False
) -> Tracing:
    """The daemon's tracing: ``NO_TRACING`` unless ``[tracing] enabled`` and the SDK is there.

    ``with_messages``: exception texts go into spans (``[logging] log_arguments``). Raises
    ``mcpd.tracing_otel.TracingError`` (a start-up failure) for unusable ``OTEL_*`` settings.
    """
    if not settings.enabled:
        return NO_TRACING
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("tracing.disabled", detail="OTEL_SDK_DISABLED=true")
        return NO_TRACING
    try:
        from mcpd import tracing_otel
    except ImportError as exc:
        log.warning(
            "tracing.unavailable",
            missing=exc.name,
            detail='[tracing] enabled = true needs pip install "mcpd-daemon[otel]"; '
            "serving without traces",
        )
        return NO_TRACING
    return tracing_otel.OtelTracing.from_environment(
        registered=registered, with_messages=with_messages
    )


def remember_scope(app: App) -> App:
    """``app``, with each HTTP request's scope in ``HTTP_SCOPE`` while it is served."""

    async def remembering(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        token = HTTP_SCOPE.set(scope)
        try:
            await app(scope, receive, send)
        finally:
            HTTP_SCOPE.reset(token)

    return remembering
