"""The raw ASGI application: lifespan, and routing to the MCP endpoint.

quart-trio costs 0.25-0.35 ms per request, so the MCP path is served by plain ASGI, and so
is the 2024-11-05 transport. Every other path, and the lifespan protocol, go to the operator
app (``mcpd.transport.operator``: health, metrics, auth metadata, the JSON 404); without one,
anything else answers a JSON 404 here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from mcpd.protocol.errors import TransportError
from mcpd.transport.asgi_io import Receive, Scope, reject
from mcpd.transport.endpoint import Endpoint
from mcpd.transport.exchange import Send

App = Callable[[Scope, Receive, Send], Awaitable[None]]


class NotFound(TransportError):
    http_status = 404


class McpApp:
    """ASGI entry point handed to hypercorn."""

    def __init__(
        self,
        endpoint: Endpoint,
        path: str,
        routes: Mapping[str, App] | None = None,
        *,
        other: App | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._other = other
        self._paths = path_variants(path)
        # Other paths (the 2024-11-05 transport's), with and without a trailing slash.
        self._routes = {
            variant: app
            for route, app in (routes or {}).items()
            for variant in path_variants(route)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path in self._paths:
                await self._endpoint(scope, receive, send)
            elif path in self._routes:
                await self._routes[path](scope, receive, send)
            elif self._other is not None:
                await self._other(scope, receive, send)
            else:
                await reject(send, NotFound(f"no MCP endpoint at {path}"))
        elif kind == "lifespan":
            if self._other is not None:  # it completes the protocol for both
                await self._other(scope, receive, send)
            else:
                await serve_lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})


def path_variants(path: str) -> set[str]:
    """``path`` with and without a trailing slash."""
    return {path, path.rstrip("/") + "/"} if path != "/" else {"/"}


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Complete ASGI's lifespan protocol and nothing else.

    hypercorn.trio.serve crashes if an app returns from the lifespan scope without completing
    the protocol; the daemon owns start-up and shutdown itself.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
