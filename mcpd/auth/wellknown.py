"""Serving the protected-resource metadata (RFC 9728) as a raw ASGI app.

Unauthenticated, JSON, with CORS so browser-based clients (MCP Inspector) can read it from
another origin: ``GET``/``HEAD`` answer the document, ``OPTIONS`` a preflight, anything else
405 (JSON too: some clients parse any answer at a well-known path as JSON). The routes skip
the MCP endpoint's Origin check, like the health endpoints.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

from mcpd.auth.metadata import metadata_paths, protected_resource_metadata
from mcpd.auth.settings import AuthSettings

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

CORS: Final = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"mcp-protocol-version, authorization, content-type"),
    (b"access-control-max-age", b"86400"),
]


class MetadataApp:
    """The document for the current settings; ``document`` is recomputed by ``update``."""

    def __init__(self, auth: AuthSettings, scopes: Iterable[str] = ()) -> None:
        self.body = b""
        self.update(auth, scopes)

    def update(self, auth: AuthSettings, scopes: Iterable[str] = ()) -> None:
        """Settings or registry changed (a reload): serve the new document from now on."""
        self.body = json.dumps(protected_resource_metadata(auth, scopes)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        if method == "OPTIONS":
            await _answer(send, 204, b"", [])
        elif method in ("GET", "HEAD"):
            body = self.body if method == "GET" else b""
            length = [(b"content-length", str(len(self.body)).encode())]
            await _answer(send, 200, body, [(b"cache-control", b"max-age=300"), *length])
        else:
            error = json.dumps({"error": "method_not_allowed"}).encode()
            await _answer(send, 405, error, [(b"allow", b"GET, HEAD, OPTIONS")])


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", b"application/json"), *CORS, *extra]
    if not any(name == b"content-length" for name, _ in extra):
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def metadata_routes(auth: AuthSettings, mcp_path: str, app: MetadataApp | None) -> dict[str, App]:
    """Path -> app for the daemon's router; empty in keys-only mode and mode none."""
    if app is None or not auth.oauth_enabled:
        return {}
    return dict.fromkeys(metadata_paths(auth.resource, mcp_path), app)
