"""The operator-facing HTTP surface: one quart-trio app per listener, beside the MCP endpoint.

What operators and their tools poll or fetch: health, readiness and metrics
(``mcpd.transport.health``), and, when ``[auth] mode`` includes OAuth, the RFC 9728
protected-resource metadata (``mcpd.auth.wellknown``). The MCP endpoint itself stays raw
ASGI (quart-trio costs 0.25-0.35 ms a request, and that endpoint owns its disconnect
handling); ``McpApp`` hands every other path to this app, so an unknown path is answered
here, with the JSON 404 that clients parse. With ``[metrics] listen`` the health routes get
an app of their own on that listener, and the main listener's app keeps the metadata routes:
clients look for those at the MCP origin.

Quart's own bounds are set from ``[server]``: a response must be written within
``write_timeout_seconds``, a body arrive within ``body_timeout_seconds``, and no body is kept
at all (no route reads one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from quart import Blueprint, Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from mcpd.auth.wellknown import MetadataDocument
from mcpd.config import ServerSettings
from mcpd.protocol.errors import McpError, TransportError
from mcpd.protocol.jsonrpc import dumps, error_message
from mcpd.transport.app import App
from mcpd.transport.asgi_io import Scope, header_map

JSON = "application/json"
# Routes take every method and answer the ones they do not serve themselves (405 with their
# own Allow and body); werkzeug's automatic HEAD and OPTIONS would answer for them otherwise.
ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")


class NothingHere(TransportError):
    http_status = 404


def protocol_error(error: McpError) -> Response:
    """A refusal worded as the MCP endpoint words it: the error's HTTP status and a JSON-RPC
    error body."""
    return Response(dumps(error_message(None, error)), error.http_status, {"content-type": JSON})


def request_header(name: str) -> str | None:
    """The request's header ``name`` exactly as the MCP endpoint reads it (the raw value, the
    last one if repeated; quart's view adds a Host to HTTP/1.0 requests that sent none)."""
    return header_map(cast(Scope, request.scope)).get(name)


def metadata_blueprint(document: MetadataDocument, paths: Iterable[str]) -> Blueprint:
    """The protected-resource metadata at each of ``paths`` (``mcpd.auth.wellknown``)."""
    blueprint = Blueprint("metadata", __name__)

    async def metadata() -> Response:
        status, headers, body = document.answer(request.method)
        response = Response(body, status)
        # Set after the body: quart derives Content-Length from it, and HEAD has none.
        response.headers.update(headers)
        return response

    for path in paths:
        blueprint.add_url_rule(path, "metadata", metadata, methods=ANY_METHOD)
    return blueprint


def operator_app(blueprints: Iterable[Blueprint], server: ServerSettings, *, not_found: str) -> App:
    """An ASGI app serving ``blueprints``; any other path is a JSON 404 saying ``not_found``."""
    app = QuartTrio(__name__)
    # Paths match exactly as configured (both slash forms are registered): no redirects.
    app.url_map.merge_slashes = False
    app.config.update(
        RESPONSE_TIMEOUT=server.write_timeout,
        BODY_TIMEOUT=server.body_timeout,
        MAX_CONTENT_LENGTH=0,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)

    async def nothing_here(error: NotFound) -> Response:
        return protocol_error(NothingHere(f"{not_found} at {request.path}"))

    async def other_method(error: MethodNotAllowed) -> Response:
        # A method beyond ANY_METHOD: the route refuses it as it refuses the others.
        endpoint, _ = app.url_map.bind("").match(request.path, method="GET")
        return cast(Response, await app.ensure_async(app.view_functions[endpoint])())

    async def http_error(error: HTTPException) -> Response:
        body = dumps({"error": error.name})
        return Response(body, error.code or 500, {"content-type": JSON})

    app.register_error_handler(NotFound, nothing_here)
    app.register_error_handler(MethodNotAllowed, other_method)
    app.register_error_handler(HTTPException, http_error)
    return cast(App, app)
