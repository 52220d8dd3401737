"""What the protected-resource metadata routes (RFC 9728) answer: pure data, no I/O.

Unauthenticated, JSON, with CORS so browser-based clients (MCP Inspector) can read it from
another origin: ``GET``/``HEAD`` answer the document, ``OPTIONS`` a preflight, anything else
405 (JSON too: some clients parse any answer at a well-known path as JSON). The routes skip
the MCP endpoint's Origin check, like the health endpoints. The operator app
(``mcpd.transport.operator``) serves these answers at ``metadata_routes``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

from mcpd.auth.metadata import metadata_paths, protected_resource_metadata
from mcpd.auth.settings import AuthSettings

Headers = list[tuple[str, str]]

CORS: Final = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, HEAD, OPTIONS"),
    ("access-control-allow-headers", "mcp-protocol-version, authorization, content-type"),
    ("access-control-max-age", "86400"),
]
ALLOW: Final = "GET, HEAD, OPTIONS"
NOT_ALLOWED: Final = json.dumps({"error": "method_not_allowed"}).encode()


class MetadataDocument:
    """The document for the current settings; ``update`` recomputes it (a reload)."""

    def __init__(self, auth: AuthSettings, scopes: Iterable[str] = ()) -> None:
        self.body = b""
        self.update(auth, scopes)

    def update(self, auth: AuthSettings, scopes: Iterable[str] = ()) -> None:
        """Settings or registry changed: serve the new document from now on."""
        self.body = json.dumps(protected_resource_metadata(auth, scopes)).encode()

    def answer(self, method: str) -> tuple[int, Headers, bytes]:
        """Status, headers and body for a request with ``method``."""
        if method == "OPTIONS":
            return 204, _headers(0), b""
        if method in ("GET", "HEAD"):
            # HEAD: the length of the document it would get, and no body.
            extra = [("cache-control", "max-age=300")]
            return 200, _headers(len(self.body), extra), self.body if method == "GET" else b""
        return 405, _headers(len(NOT_ALLOWED), [("allow", ALLOW)]), NOT_ALLOWED


def _headers(length: int, extra: Headers | None = None) -> Headers:
    return [
        ("content-type", "application/json"),
        *CORS,
        *(extra or []),
        ("content-length", str(length)),
    ]


def metadata_routes(auth: AuthSettings, mcp_path: str) -> list[str]:
    """Where the document is served; empty in keys-only mode and mode none (clients that see
    OAuth metadata drop the static key header a user configured)."""
    if not auth.oauth_enabled:
        return []
    return metadata_paths(auth.resource, mcp_path)
