"""Health and metrics over HTTP: ``GET /healthz``, ``/readyz`` and ``/metrics`` (paths from config).

Plain ASGI like the MCP endpoint (these are polled often and must stay cheap). They are
served beside the MCP endpoint, or alone on a listener of their own. They change nothing and
reveal no secrets (no config values, no tool arguments; counts, states and registered tool
names only), so no Origin check applies (scrapers send none). The Host check does: without it
a DNS-rebinding page could read ``/metrics`` from a loopback-only daemon.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.exposition import choose_encoder

from mcpd.config import MetricsSettings
from mcpd.metrics import Metrics
from mcpd.protocol.errors import McpError
from mcpd.protocol.headers import check_host
from mcpd.protocol.jsonrpc import dumps
from mcpd.transport.app import App, NotFound, path_variants, serve_lifespan
from mcpd.transport.asgi_io import Receive, Scope, header_map, reject
from mcpd.transport.exchange import JSON_HEADERS, Send, send_response

_ALLOW_GET = [(b"allow", b"GET")]


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the daemon takes requests now, why not, and counts worth a glance."""

    reasons: tuple[str, ...] = ()
    counts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.reasons

    def body(self) -> dict[str, Any]:
        status = "ready" if self.ready else "not_ready"
        return {"status": status, "reasons": list(self.reasons), **self.counts}


def readiness(
    *,
    listening: bool,
    accepting: bool,
    plugins: Mapping[str, int],
    counts: Mapping[str, Any],
) -> Readiness:
    """Ready once listening with plugins loaded, until the drain at shutdown begins.

    Plugins that failed do not make the daemon unready while another one serves; if every
    plugin that was tried failed, there is nothing to serve and it is not ready.
    """
    reasons = []
    if not listening:
        reasons.append("starting: not listening yet")
    if not accepting:
        reasons.append("draining: the daemon is shutting down")
    if plugins.get("failed", 0) and not plugins.get("loaded", 0):
        reasons.append(f"no plugin loaded: {plugins['failed']} failed")
    return Readiness(tuple(reasons), {"plugins": dict(plugins), **counts})


class HealthApp:
    """The three endpoints, as routes for the main app or as an ASGI app of their own."""

    def __init__(
        self,
        settings: MetricsSettings,
        metrics: Metrics,
        probe: Callable[[], Readiness],
        hosts: frozenset[str] | None = frozenset(),
    ) -> None:
        self._metrics = metrics
        self._probe = probe
        # Host values accepted besides loopback names; None: no Host check (see host_policy).
        self._hosts = hosts
        self._routes: dict[str, App] = {
            settings.healthz_path: self._checked(self._healthz),
            settings.readyz_path: self._checked(self._readyz),
            settings.path: self._checked(self._scrape),
        }
        self._lookup = {
            variant: app for path, app in self._routes.items() for variant in path_variants(path)
        }

    def routes(self) -> dict[str, App]:
        return dict(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a listener of its own: these paths only, 404 for anything else."""
        if scope["type"] == "http":
            route = self._lookup.get(scope["path"])
            if route is None:
                await reject(send, NotFound(f"nothing at {scope['path']}"))
            else:
                await route(scope, receive, send)
        elif scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    def _checked(self, route: App) -> App:
        """``route`` behind the Host check (421 for a name this daemon does not serve)."""
        hosts = self._hosts
        if hosts is None:
            return route

        async def checked(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                check_host(header_map(scope).get("host"), hosts)
            except McpError as exc:
                self._metrics.rejected(exc.http_status)
                await reject(send, exc)
                return
            await route(scope, receive, send)

        return checked

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Answering at all proves the event loop runs.
        if await _get_only(scope, send):
            await send_response(send, 200, b'{"status":"ok"}')

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _get_only(scope, send):
            state = self._probe()
            await send_response(send, 200 if state.ready else 503, dumps(state.body()))

    async def _scrape(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _get_only(scope, send):
            encode, content_type = choose_encoder(header_map(scope).get("accept", ""))
            body = encode(self._metrics.registry)
            await send_response(send, 200, body, [(b"content-type", content_type.encode())])


async def _get_only(scope: Scope, send: Send) -> bool:
    if scope["method"] == "GET":
        return True
    body = dumps({"error": f"{scope['method']} is not allowed here; use GET"})
    await send_response(send, 405, body, [*JSON_HEADERS, *_ALLOW_GET])
    return False
