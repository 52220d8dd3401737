"""The daemon's Prometheus metrics: one ``CollectorRegistry`` per daemon, fed at a few choke points.

Names follow the OpenTelemetry MCP semantic conventions where they define one, converted the
Prometheus way (dots become underscores, the unit becomes a suffix):

- ``mcp.server.operation.duration`` → ``mcp_server_operation_duration_seconds``
  {``mcp_method_name``, ``error_type``}; ``error_type`` is empty on success, the JSON-RPC
  error code on an error response, ``tool_error`` for an ``isError`` tool result and
  ``cancelled`` for a request that was cancelled.
- ``mcp.server.session.duration`` → ``mcp_server_session_duration_seconds``
  {``mcp_protocol_version``}.

The rest are mcpd's own (``mcpd_*``, and ``mcp_server_tool_call_duration_seconds``, which
the conventions fold into the operation duration). Labels only take values from closed sets
(known method names, else ``other``; registered tool names; our error codes), so a client
cannot grow the number of series. Nothing here records arguments or config values.

Recording is a dict lookup and a counter or histogram update, no task and no lock of ours;
values that already exist elsewhere (requests in flight, open sessions) are read at scrape
time instead of being kept up to date on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcpd.limits.names import LIMIT_NAMES
from mcpd.plugin.loader import PluginRecord, count_states
from mcpd.runtime.flights import (
    CLIENT_CANCELLED,
    CLIENT_DISCONNECTED,
    SESSION_DELETED,
    SESSION_EXPIRED,
    SHUTDOWN,
)

# The "<name>_created" timestamps would double what a scrape carries, for nothing: the
# text format Prometheus reads has no use for them. (A process-wide switch of the library.)
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# The bucket boundaries the conventions recommend for MCP durations, in seconds.
DURATION_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
# Event-loop lag, in seconds: a healthy loop stays in the first buckets.
LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

KNOWN_METHODS: Final = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "subscriptions/listen",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)
OTHER: Final = "other"

# error_type values besides JSON-RPC codes.
TOOL_ERROR: Final = "tool_error"
CANCELLED: Final = "cancelled"

# Stream kinds for mcpd_open_streams.
GET_STREAM: Final = "get"
POST_SSE: Final = "post_sse"
LISTEN: Final = "listen"
HTTP_SSE: Final = "http_sse"
STREAM_KINDS: Final = (GET_STREAM, POST_SSE, LISTEN, HTTP_SSE)

CANCEL_REASONS: Final = ("disconnect", "client", "timeout", "shutdown", "session_end", "other")

# Distinct auth failure reasons counted before the rest share "other": the reasons come from
# mcpd's authenticator (a closed set), this only guards the series count against a mistake.
AUTH_REASONS_MAX: Final = 32


def method_label(method: str) -> str:
    """The method name as a label value: known names as they are, anything else ``other``."""
    return method if method in KNOWN_METHODS else OTHER


def cancel_reason(reason: str | None) -> str:
    """The label for a flight's cancel reason (see ``mcpd.runtime.flights``)."""
    if reason == CLIENT_DISCONNECTED:
        return "disconnect"
    if reason is not None and reason.startswith(CLIENT_CANCELLED):
        return "client"  # "cancelled by the client: <the client's words>"
    if reason in (SESSION_DELETED, SESSION_EXPIRED):
        return "session_end"
    if reason == SHUTDOWN:
        return "shutdown"
    return "other"


def outcome_of(error_type: str) -> str:
    if not error_type:
        return "ok"
    return "cancelled" if error_type == CANCELLED else "error"


class Metrics:
    """Every metric of one daemon, in a registry of its own (never the global one).

    Components take one in their constructor and default to a fresh, unread instance, so
    objects built on their own (in unit tests) need none.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._operations = Histogram(
            "mcp_server_operation_duration_seconds",
            "MCP request or notification duration, from receipt until the answer is sent.",
            ["mcp_method_name", "error_type"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._requests = Counter(
            "mcpd_requests",
            "MCP requests and notifications served, by method and outcome (ok, error, cancelled).",
            ["mcp_method_name", "outcome"],
            registry=r,
        )
        self._tool_calls = Histogram(
            "mcp_server_tool_call_duration_seconds",
            "Tool run time, by tool and outcome (ok, error, timeout, cancelled, input_required).",
            ["gen_ai_tool_name", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._sessions = Histogram(
            "mcp_server_session_duration_seconds",
            "Duration of ended MCP sessions.",
            ["mcp_protocol_version"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._cancellations = Counter(
            "mcpd_cancellations",
            "Requests cancelled, by reason: "
            "disconnect, client, timeout, shutdown, session_end, other.",
            ["reason"],
            registry=r,
        )
        self._rejections = Counter(
            "mcpd_http_rejections",
            "HTTP requests refused before any MCP method ran, by HTTP status.",
            ["status"],
            registry=r,
        )
        self._plugin_failures = Counter(
            "mcpd_plugin_load_failures",
            "Plugins that failed to load, counted at start and at every reload.",
            registry=r,
        )
        self._reloads = Counter(
            "mcpd_reloads",
            "Configuration reloads (SIGHUP), by outcome (ok, failed).",
            ["outcome"],
            registry=r,
        )
        self._accept_pauses = Counter(
            "mcpd_accept_paused",
            "Times accepting connections paused because file descriptors (or kernel memory) "
            "ran out; new connections waited in the listen backlog meanwhile.",
            registry=r,
        )
        self._loop_lag = Histogram(
            "mcpd_event_loop_lag_seconds",
            "How late the event loop ran the loop watch's timer, measured every 0.1 s.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self._loop_stalls = Counter(
            "mcpd_event_loop_stalls",
            "Event-loop stalls (lag beyond [server] loop_stall_seconds), one per stall.",
            registry=r,
        )
        self._limit_rejections = Counter(
            "mcpd_limit_rejections",
            "Requests refused over a limit (HTTP 429) and tool quota hits, by limit: "
            + ", ".join(LIMIT_NAMES)
            + ".",
            ["limit"],
            registry=r,
        )
        self._auth_failures = Counter(
            "mcpd_auth_failures",
            "Requests refused by authentication or authorization, by reason.",
            ["reason"],
            registry=r,
        )
        self._auth_reasons: set[str] = set()
        self.tool_calls_in_flight = 0
        self._live = _Live(lambda: self.tool_calls_in_flight)
        r.register(self._live)
        for reason in CANCEL_REASONS:
            self._cancellations.labels(reason)
        for outcome in ("ok", "failed"):
            self._reloads.labels(outcome)
        for limit in LIMIT_NAMES:
            self._limit_rejections.labels(limit)
        # Label children, looked up once: labels() validates and locks on every call.
        self._operation_children: dict[tuple[str, str], tuple[Histogram, Counter]] = {}
        self._tool_children: dict[tuple[str, str], Histogram] = {}

    # -- the hot path ---------------------------------------------------------------------

    def operation(self, method: str, error_type: str, seconds: float) -> None:
        """One request or notification answered (``error_type`` empty on success)."""
        # Keyed by the label, not the raw method: clients choose method names, and a cache
        # keyed by them would grow with every invented one.
        label = method_label(method)
        key = (label, error_type)
        children = self._operation_children.get(key)
        if children is None:
            children = (
                self._operations.labels(label, error_type),
                self._requests.labels(label, outcome_of(error_type)),
            )
            self._operation_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        """A registered tool's run ended; ``tool`` must be a registered name (bounded)."""
        key = (tool, outcome)
        child = self._tool_children.get(key)
        if child is None:
            child = self._tool_children[key] = self._tool_calls.labels(tool, outcome)
        child.observe(seconds)
        if outcome == "timeout":
            self._cancellations.labels("timeout").inc()

    def cancelled(self, reason: str | None) -> None:
        """A request was cancelled with a flight's ``reason``."""
        self._cancellations.labels(cancel_reason(reason)).inc()

    def rejected(self, status: int) -> None:
        self._rejections.labels(str(status)).inc()

    def loop_lag(self, seconds: float, stalled: bool) -> None:
        """One measurement of the loop watch; ``stalled`` when a new stall began with it."""
        self._loop_lag.observe(seconds)
        if stalled:
            self._loop_stalls.inc()

    def limit_rejected(self, limit: str) -> None:
        """A request refused over ``limit`` (one of ``mcpd.limits.LIMIT_NAMES``)."""
        self._limit_rejections.labels(limit if limit in LIMIT_NAMES else OTHER).inc()

    def expect_auth_failures(self, reasons: tuple[str, ...]) -> None:
        """Start these reasons' series at 0, so a rate over them is defined from the start."""
        for reason in reasons:
            self._auth_reasons.add(reason)
            self._auth_failures.labels(reason)

    def auth_failed(self, reason: str) -> None:
        """A request refused by authentication or authorization, for ``reason``."""
        if reason not in self._auth_reasons:
            if len(self._auth_reasons) >= AUTH_REASONS_MAX:
                reason = OTHER
            self._auth_reasons.add(reason)
        self._auth_failures.labels(reason).inc()

    # -- lifetimes --------------------------------------------------------------------------

    def session_ended(self, protocol_version: str, seconds: float) -> None:
        self._sessions.labels(protocol_version).observe(seconds)

    def stream_opened(self, kind: str) -> None:
        self._live.streams[kind] += 1

    def stream_closed(self, kind: str) -> None:
        self._live.streams[kind] -= 1

    # -- the daemon -------------------------------------------------------------------------

    def plugins_loaded(self, plugins: Iterable[PluginRecord], tools: int) -> None:
        """A registry was loaded (at start or by a reload): count failures, keep the states."""
        states = count_states(plugins)
        self._plugin_failures.inc(states["failed"])
        self._live.plugins = states
        self._live.tools = tools

    def accept_paused(self) -> None:
        """Accepting paused at the descriptor limit (``hypercorn_accept``)."""
        self._accept_pauses.inc()

    def reloaded(self, ok: bool) -> None:
        self._reloads.labels("ok" if ok else "failed").inc()

    def add_process_collectors(self) -> None:
        """The standard ``process_*`` (CPU, memory, open files) and ``python_gc_*`` series.

        Once per process (the daemon's): the GC collector hooks ``gc.callbacks``.
        """
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def watch(self, *, in_flight: Callable[[], int], sessions: Callable[[], int]) -> None:
        """Read these at scrape time: requests in flight and open sessions."""
        self._live.in_flight = in_flight
        self._live.sessions = sessions


def _zero() -> int:
    return 0


class _Live(Collector):
    """Gauges read at scrape time, so that the hot path keeps nothing up to date for them."""

    def __init__(self, tool_calls: Callable[[], int]) -> None:
        self.streams = dict.fromkeys(STREAM_KINDS, 0)
        self.plugins = {"loaded": 0, "failed": 0, "disabled": 0}
        self.tools = 0
        self.in_flight: Callable[[], int] = _zero
        self.sessions: Callable[[], int] = _zero
        self.tool_calls = tool_calls

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "mcpd_requests_in_flight", "MCP requests being served now.", self.in_flight()
        )
        yield GaugeMetricFamily(
            "mcpd_tool_calls_in_flight", "Tool calls running now.", self.tool_calls()
        )
        yield GaugeMetricFamily("mcpd_sessions", "Open MCP sessions.", self.sessions())
        yield _labelled(
            "mcpd_open_streams",
            "Open SSE streams by kind: get (session GET), post_sse (a POST answered as a "
            "stream), listen (2026 subscriptions/listen), http_sse (2024-11-05 transport).",
            "kind",
            self.streams,
        )
        yield _labelled("mcpd_plugins", "Plugins by state at the last load.", "state", self.plugins)
        yield GaugeMetricFamily("mcpd_tools", "Tools the loaded plugins serve.", self.tools)


def _labelled(name: str, documentation: str, label: str, values: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value, count in values.items():
        family.add_metric([value], count)
    return family
