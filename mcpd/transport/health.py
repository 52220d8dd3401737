"""Health and metrics: what ``GET /healthz``, ``/readyz`` and ``/metrics`` answer (paths from
config), as a Blueprint of the operator app (``mcpd.transport.operator``).

They change nothing and reveal no secrets (no config values, no tool arguments; counts,
states and registered tool names only), so no Origin check applies (scrapers send none). The
Host check does: without it a DNS-rebinding page could read ``/metrics`` from a loopback-only
daemon. They answer GET only: 405 with ``Allow: GET`` and a JSON body otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.exposition import choose_encoder
from quart import Blueprint, Response, request

from mcpd.config import MetricsSettings
from mcpd.metrics import Metrics
from mcpd.protocol.errors import McpError
from mcpd.protocol.headers import check_host
from mcpd.protocol.jsonrpc import dumps
from mcpd.transport.app import path_variants
from mcpd.transport.operator import ANY_METHOD, JSON, protocol_error, request_header


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


def not_allowed(method: str) -> Response:
    """The 405 of a GET-only route."""
    body = dumps({"error": f"{method} is not allowed here; use GET"})
    return Response(body, 405, {"content-type": JSON, "allow": "GET"})


def health_blueprint(
    settings: MetricsSettings,
    metrics: Metrics,
    probe: Callable[[], Readiness],
    hosts: frozenset[str] | None = frozenset(),
) -> Blueprint:
    """The three endpoints. ``hosts``: Host values accepted besides loopback names; None: no
    Host check (see ``mcpd.transport.endpoint.host_policy``)."""
    blueprint = Blueprint("health", __name__)

    @blueprint.before_request
    async def host_checked() -> Response | None:
        if hosts is None:
            return None
        try:
            check_host(request_header("host"), hosts)
        except McpError as exc:
            metrics.rejected(exc.http_status)
            return protocol_error(exc)
        return None

    async def healthz() -> Response:
        # Answering at all proves the event loop runs.
        return Response(b'{"status":"ok"}', 200, {"content-type": JSON})

    async def readyz() -> Response:
        state = probe()
        return Response(dumps(state.body()), 200 if state.ready else 503, {"content-type": JSON})

    async def scrape() -> Response:
        encode, content_type = choose_encoder(request_header("accept") or "")
        return Response(encode(metrics.registry), 200, {"content-type": content_type})

    routes = {settings.healthz_path: healthz, settings.readyz_path: readyz, settings.path: scrape}
    for path, view in routes.items():
        guarded = _get_only(view)
        for variant in path_variants(path):
            blueprint.add_url_rule(variant, view.__name__, guarded, methods=ANY_METHOD)
    return blueprint


def _get_only(view: Callable[[], Any]) -> Callable[[], Any]:
    async def get_only() -> Response:
        if request.method != "GET":
            return not_allowed(request.method)
        return await view()  # type: ignore[no-any-return]

    return get_only
