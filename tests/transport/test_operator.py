"""The operator app (quart-trio) over real HTTP: health, metrics and auth metadata routes,
alone and behind the MCP app, served in-process by hypercorn the way the daemon serves them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.hypercorn_server import make_config, serving

from mcpd.auth.settings import AuthSettings
from mcpd.auth.wellknown import MetadataDocument, metadata_routes
from mcpd.config import MetricsSettings, ServerSettings, Settings, ToolsSettings
from mcpd.metrics import Metrics
from mcpd.plugin.registry import load_registry
from mcpd.runtime.access import Access
from mcpd.runtime.dispatch import Dispatcher
from mcpd.runtime.flights import FlightTracker, StatelessRequests
from mcpd.runtime.sessions import SessionManager
from mcpd.transport.app import App, McpApp
from mcpd.transport.endpoint import Endpoint
from mcpd.transport.health import Readiness, health_blueprint
from mcpd.transport.operator import metadata_blueprint, operator_app

AUTH = {
    "mode": "oauth",
    "resource": "https://mcp.example.com/mcp",
    "oauth": {"issuer": "https://idp.example.com"},
}


@asynccontextmanager
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, make_config()) as server:
        host, port = server.address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as http:
            yield http


def health_app(
    metrics: Metrics, probe: Callable[[], Readiness], hosts: frozenset[str] | None = frozenset()
) -> App:
    blueprint = health_blueprint(MetricsSettings(path="/prom"), metrics, probe, hosts)
    return operator_app([blueprint], ServerSettings(), not_found="nothing")


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


async def test_health_routes_on_an_app_of_their_own() -> None:
    states = [Readiness()]
    async with client(health_app(Metrics(), lambda: states[-1])) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz/")).status_code == 200  # with or without the slash
        scrape = await http.get("/prom")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert b"mcp_server_operation_duration_seconds" in scrape.content
        open_metrics = await http.get("/prom", headers={"accept": "application/openmetrics-text"})
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        states.append(Readiness(("draining: the daemon is shutting down",)))
        draining = await http.get("/readyz")
        assert draining.status_code == 503
        assert draining.json()["status"] == "not_ready"
        missing = await http.get("/metrics")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "nothing at /metrics"
        # Paths match as configured, with or without one trailing slash: no redirects.
        doubled = await http.get("/healthz//")
        assert doubled.status_code == 404
        assert doubled.json()["error"]["message"] == "nothing at /healthz//"


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PURGE"])
async def test_health_routes_answer_get_only(method: str) -> None:
    async with client(health_app(Metrics(), Readiness)) as http:
        for path in ("/healthz", "/readyz", "/prom", "/prom/"):
            response = await http.request(method, path)
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == "GET"
            if method != "HEAD":
                assert response.json() == {"error": f"{method} is not allowed here; use GET"}


async def test_the_host_check_and_no_origin_check() -> None:
    metrics = Metrics()
    async with client(health_app(metrics, Readiness)) as http:
        for path in ("/healthz", "/readyz", "/prom"):
            assert (await http.get(path, headers={"origin": "https://evil.example"})).is_success
            refused = await http.get(path, headers={"host": "evil.example"})
            assert refused.status_code == 421
            assert refused.json()["error"]["message"] == "host 'evil.example' is not served here"
    assert counter(metrics, "mcpd_http_rejections_total", status="421") == 3
    # Beyond loopback without allowed_hosts there is no Host check (host_policy gives None).
    async with client(health_app(metrics, Readiness, hosts=None)) as http:
        assert (await http.get("/healthz", headers={"host": "mcp.example.org"})).is_success


def mcp_app(metadata: MetadataDocument | None, metrics: Metrics) -> App:
    """The main listener's composition, as the daemon builds it."""
    server = ServerSettings(listen=("127.0.0.1:0",))
    registry = load_registry(enable=[], disable=[], plugin_settings={})
    tracker = FlightTracker()
    sessions = SessionManager(idle_timeout=60, max_sessions=10)
    access = Access(Settings())
    dispatcher = Dispatcher(registry, ToolsSettings(), access=access)
    endpoint = Endpoint(server, dispatcher, sessions, StatelessRequests(), tracker, access=access)
    blueprints = [health_blueprint(MetricsSettings(), metrics, Readiness)]
    if metadata is not None:
        auth = AuthSettings.model_validate(AUTH)
        blueprints.append(metadata_blueprint(metadata, metadata_routes(auth, server.path)))
    other = operator_app(blueprints, server, not_found="no MCP endpoint")
    return McpApp(endpoint, server.path, other=other)


async def test_behind_the_mcp_app_it_answers_every_other_path() -> None:
    metadata = MetadataDocument(AuthSettings.model_validate(AUTH))
    async with client(mcp_app(metadata, Metrics())) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        document = await http.get("/.well-known/oauth-protected-resource/mcp")
        assert document.json()["resource"] == AUTH["resource"]
        unknown = await http.get("/elsewhere")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/json"
        assert unknown.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": "no MCP endpoint at /elsewhere"},
        }
        # The MCP endpoint is still the raw ASGI one (its own refusal, not quart's).
        refused = await http.put("/mcp")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, POST, DELETE"


async def test_no_metadata_routes_without_oauth() -> None:
    async with client(mcp_app(None, Metrics())) as http:
        response = await http.get("/.well-known/oauth-protected-resource")
        assert response.status_code == 404
        assert "no MCP endpoint" in response.json()["error"]["message"]


async def test_metadata_answers_as_rfc_9728_asks() -> None:
    auth = AuthSettings.model_validate({**AUTH, "scopes_supported": ["probe:read"]})
    document = MetadataDocument(auth)
    app = operator_app(
        [metadata_blueprint(document, metadata_routes(auth, "/mcp"))],
        ServerSettings(),
        not_found="nothing",
    )
    expected: dict[str, Any] = {
        "resource": AUTH["resource"],
        "authorization_servers": ["https://idp.example.com"],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["probe:read"],
    }
    async with client(app) as http:
        origin = {"origin": "https://inspector.example"}  # no Origin check here either
        for path in (
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ):
            response = await http.get(path, headers=origin)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            assert response.headers["access-control-allow-origin"] == "*"
            assert response.headers["cache-control"] == "max-age=300"
            assert response.json() == expected
        head = await http.head("/.well-known/oauth-protected-resource")
        assert (head.status_code, head.content) == (200, b"")
        assert int(head.headers["content-length"]) == len(document.body)
        preflight = await http.options("/.well-known/oauth-protected-resource/mcp", headers=origin)
        assert preflight.status_code == 204
        assert "mcp-protocol-version" in preflight.headers["access-control-allow-headers"]
        for method in ("POST", "PURGE"):
            refused = await http.request(method, "/.well-known/oauth-protected-resource")
            assert refused.status_code == 405
            assert refused.headers["allow"] == "GET, HEAD, OPTIONS"
            assert refused.headers["access-control-allow-origin"] == "*"
            assert refused.json() == {"error": "method_not_allowed"}
        # A reload's new document is served from then on.
        document.update(auth, ["probe:write"])
        assert (await http.get("/.well-known/oauth-protected-resource")).json()[
            "scopes_supported"
        ] == ["probe:read"]  # configured scopes win over the ones rules and plugins need
        document.update(AuthSettings.model_validate(AUTH), ["probe:write"])
        assert (await http.get("/.well-known/oauth-protected-resource")).json()[
            "scopes_supported"
        ] == ["probe:write"]
