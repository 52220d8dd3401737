"""Tracing with the OpenTelemetry SDK (the ``otel`` extra), imported only when tracing is on.

Configured the standard way, by environment: the exporters by ``OTEL_TRACES_EXPORTER``
(default ``otlp``: OTLP over HTTP/protobuf, or gRPC by ``OTEL_EXPORTER_OTLP_PROTOCOL``, the
gRPC exporter installed separately; ``console``; ``none``; any installed exporter's entry
point name), each exporter its own ``OTEL_EXPORTER_*`` variables, the sampler
``OTEL_TRACES_SAMPLER``, the batching ``OTEL_BSP_*``, the resource ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` (``service.name`` defaults to ``mcpd``), the propagators
``OTEL_PROPAGATORS``. The provider becomes the global one, so that plugins' spans
(``opentelemetry.trace.get_tracer``) go where mcpd's go; one already installed (say by
``opentelemetry-instrument``) is used instead.

Span attributes follow the OpenTelemetry MCP semantic conventions. ``mcp.session.id`` is the
session id's 8-character prefix that the logs show: the whole id is a bearer credential.
Error texts: a JSON-RPC error's message is the status description (it is what the client was
told), except where it may quote a resource URI; an exception is recorded as its type and
stack (``file:line function``), its text only with ``[logging] log_arguments``.
"""

from __future__ import annotations

import os
from contextvars import Token
from importlib.metadata import entry_points
from typing import Any, Final

import structlog
import trio
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, Span, SpanKind, StatusCode

from mcpd._version import __version__
from mcpd.metrics import CANCELLED, TOOL_ERROR, cancel_reason, method_label
from mcpd.protocol.errors import McpError
from mcpd.runtime.containment import failure_fields
from mcpd.startup import StartupError
from mcpd.tracing import HTTP_SCOPE, Registered, TracedCall, Tracing, Work

EXPORTERS: Final = "opentelemetry_traces_exporter"  # the SDK's entry-point group
OTLP_BY_PROTOCOL: Final = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
# Span names carry a registered tool or prompt name (few); these attributes name it.
TARGETS: Final = {
    "tools/call": ("tool", "gen_ai.tool.name"),
    "prompts/get": ("prompt", "gen_ai.prompt.name"),
}
# Their JSON-RPC error messages may quote a resource URI, which may carry the caller's values.
QUOTES_URIS: Final = frozenset({"resources/read", "completion/complete"})
DESCRIPTION_LIMIT: Final = 256
TOOL_ERRORS: Final = {"error": TOOL_ERROR, "timeout": "timeout", "cancelled": CANCELLED}
INTERNAL_ERROR: Final = "-32603"


class TracingError(StartupError):
    """``OTEL_*`` settings that tracing cannot start with; the message names the variable."""


class OtelTracing(Tracing):
    """Spans through an SDK tracer provider."""

    enabled = True

    def __init__(
        self,
        provider: TracerProvider,
        *,
        owned: bool,
        registered: Registered,
        with_messages: bool = False,
    ) -> None:
        self.provider = provider
        self._owned = owned  # ours to shut down (not one that opentelemetry-instrument set)
        self._tracer = provider.get_tracer("mcpd", __version__)
        self._registered = registered
        self._with_messages = with_messages

    @classmethod
    def from_environment(cls, *, registered: Registered, with_messages: bool) -> OtelTracing:
        installed = trace.get_tracer_provider()
        if isinstance(installed, TracerProvider):
            return cls(installed, owned=False, registered=registered, with_messages=with_messages)
        provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
        for exporter in exporters():
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        return cls(provider, owned=True, registered=registered, with_messages=with_messages)

    # -- the request span ---------------------------------------------------------------------

    def server(self, call: TracedCall, work: Work) -> Work:
        async def traced() -> dict[str, Any]:
            request = call.request
            name, attributes = self._described(call)
            parent, links = _parents(request.params)
            span = self._tracer.start_span(
                name, parent, SpanKind.SERVER, attributes=attributes, links=links
            )
            with trace.use_span(
                span, end_on_exit=True, record_exception=False, set_status_on_exception=False
            ):
                if span.is_recording():  # the logs of this request name its trace
                    trace_id = span.get_span_context().trace_id
                    structlog.contextvars.bind_contextvars(trace_id=f"{trace_id:032x}")
                try:
                    result = await work()
                except BaseException as error:
                    self._request_failed(span, request.method, error)
                    raise
                if result.get("isError") is True:
                    _mark(span, TOOL_ERROR)
                return result

        return traced

    def _described(self, call: TracedCall) -> tuple[str, dict[str, Any]]:
        """The span's name and attributes at its start."""
        request = call.request
        method = method_label(request.method)  # unknown methods are "other", as in metrics
        attributes: dict[str, Any] = {
            "mcp.method.name": method,
            "mcp.protocol.version": call.revision,
        }
        if request.id is not None:
            attributes["jsonrpc.request.id"] = str(request.id)
        if call.session is not None:
            attributes["mcp.session.id"] = call.session.log_id
        attributes.update(_network(HTTP_SCOPE.get()))
        name = method
        if method == "tools/call":
            attributes["gen_ai.operation.name"] = "execute_tool"
        if method in TARGETS:
            kind, key = TARGETS[method]
            target = request.params.get("name")
            if isinstance(target, str) and self._registered(kind, target):
                attributes[key] = target
                name = f"{method} {target}"
        return name, attributes

    def _request_failed(self, span: Span, method: str, error: BaseException) -> None:
        if _is_cancellation(error):
            reason = getattr(error, "reason", None)  # trio 0.31+: the cancel scope's reason
            _mark(span, CANCELLED, f"cancelled: {cancel_reason(reason)}")
            return
        if isinstance(error, McpError):
            code = str(error.code)
            text = "" if method in QUOTES_URIS else error.message[:DESCRIPTION_LIMIT]
        else:  # mcpd's own bug: the client gets -32603
            code, text = INTERNAL_ERROR, "internal error"
            self._record(span, error)
        span.set_attribute("rpc.response.status_code", code)
        _mark(span, code, text)

    # -- the tool span ------------------------------------------------------------------------

    def tool(self, name: str) -> _ToolSpan:
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        span = self._tracer.start_span(
            f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        return _ToolSpan(span, context.attach(trace.set_span_in_context(span)))

    def failed(self, error: BaseException) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            self._record(span, error)

    def _record(self, span: Span, error: BaseException) -> None:
        """An ``exception`` event: type and stack; the text only when messages may be kept."""
        fields = failure_fields(error, with_message=self._with_messages)
        attributes = {
            "exception.type": fields["error_type"],
            "exception.stacktrace": "\n".join(fields.get("stack", ())),
        }
        if "error" in fields:
            attributes["exception.message"] = fields["error"]
        span.add_event("exception", attributes)

    def shutdown(self) -> None:
        self.provider.force_flush()
        if self._owned:
            self.provider.shutdown()


class _ToolSpan:
    __slots__ = ("_span", "_token")

    def __init__(self, span: Span, token: Token[Context]) -> None:
        self._span = span
        self._token = token

    def end(self, outcome: str) -> None:
        try:
            self._span.set_attribute("mcpd.tool.outcome", outcome)
            if outcome in TOOL_ERRORS:
                _mark(self._span, TOOL_ERRORS[outcome])
        finally:
            context.detach(self._token)
            self._span.end()


def _mark(span: Span, error_type: str, description: str | None = None) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(StatusCode.ERROR, description or None)


def _is_cancellation(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return error.split(trio.Cancelled)[1] is None
    return isinstance(error, trio.Cancelled)


def _parents(params: dict[str, Any]) -> tuple[Context, list[Link]]:
    """The span's parent: the trace context in ``_meta`` (linking the HTTP request's, as the
    conventions ask), else the HTTP request's, else none (a new trace)."""
    scope = HTTP_SCOPE.get()
    http = _extract(_headers(scope)) if scope is not None else Context()
    meta = params.get("_meta")
    if isinstance(meta, dict):
        fields = propagate.get_global_textmap().fields
        carrier = {
            key: value for key, value in meta.items() if key in fields and isinstance(value, str)
        }
        carried = _extract(carrier) if carrier else None
        if carried is not None and _span_context(carried).is_valid:
            linked = _span_context(http)
            return carried, [Link(linked)] if linked.is_valid else []
    return http, []


def _extract(carrier: dict[str, str]) -> Context:
    return propagate.extract(carrier, context=Context())


def _span_context(parent: Context) -> trace.SpanContext:
    return trace.get_current_span(parent).get_span_context()


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _network(scope: dict[str, Any] | None) -> dict[str, Any]:
    """``network.*`` and ``client.*`` of the HTTP request (ASGI scope), as the peer connected:
    behind a proxy, the proxy's address."""
    if scope is None:
        return {}
    attributes: dict[str, Any] = {
        "network.protocol.name": "http",
        "network.protocol.version": scope.get("http_version", "1.1"),
        # hypercorn gives no server address for unix sockets.
        "network.transport": "tcp" if scope.get("server") else "unix",
    }
    client = scope.get("client")
    if client:
        attributes["client.address"], attributes["client.port"] = client[0], client[1]
    return attributes


def _resource() -> Resource:
    """The environment's resource; ``service.name`` ``mcpd`` unless it names one."""
    detected = Resource.create({SERVICE_VERSION: __version__})
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: "mcpd"}))
    return detected


def exporters() -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (default ``otlp``)."""
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    return [_exporter(name) for name in names if name and name != "none"]


def _exporter(name: str) -> SpanExporter:
    entry = _otlp_entry_point() if name == "otlp" else name
    found = entry_points(group=EXPORTERS, name=entry)
    if not found:
        installed = ", ".join(sorted({"otlp", "none", *entry_points(group=EXPORTERS).names}))
        raise TracingError(
            f"OTEL_TRACES_EXPORTER: no installed exporter is called {entry!r} "
            f"(installed: {installed})"
        )
    exporter_class = next(iter(found)).load()
    exporter: SpanExporter = exporter_class()
    return exporter


def _otlp_entry_point() -> str:
    variable = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    protocol = os.environ.get(variable)
    if protocol is None:
        variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
        protocol = os.environ.get(variable, "http/protobuf")
    entry = OTLP_BY_PROTOCOL.get(protocol.strip())
    if entry is None:
        raise TracingError(
            f"{variable}: {protocol!r} is not an OTLP protocol mcpd can export with "
            f"(expected {' or '.join(OTLP_BY_PROTOCOL)})"
        )
    return entry
