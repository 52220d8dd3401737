"""RFC 9728 protected-resource metadata: the document and where it is served.

``resource`` is exactly the configured public URL of the MCP endpoint (strict clients compare
it with the URL the user typed). The document lists the one authorization server
(``[auth.oauth] issuer``), the scopes clients should ask for, and ``header`` as the only way to
send a token (RFC 6750 section 2.1; the query and form methods are not accepted).

Served unauthenticated at ``/.well-known/oauth-protected-resource`` and at the path-inserted
form for the resource's path (``/.well-known/oauth-protected-resource/mcp``): clients try the
URL named in the 401 challenge, then the path form, then the root form. In keys-only mode
(and mode none) nothing is served: clients that see OAuth metadata drop the static key
header a user configured.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import Any, Final

from mcpd.auth.settings import AuthSettings

WELL_KNOWN: Final = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str) -> str:
    """The absolute URL of the metadata for ``resource`` (RFC 9728 section 3.1)."""
    parts = urllib.parse.urlsplit(resource)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{path}"


def metadata_paths(resource: str, mcp_path: str) -> list[str]:
    """Where to serve the document: the root form, and the path forms of the resource URL
    and of the daemon's MCP path (different when a proxy rewrites the path)."""
    resource_path = urllib.parse.urlsplit(resource).path.rstrip("/")
    paths = [WELL_KNOWN, WELL_KNOWN + resource_path, WELL_KNOWN + mcp_path.rstrip("/")]
    return list(dict.fromkeys(paths))


def protected_resource_metadata(auth: AuthSettings, scopes: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON document. ``scopes`` adds to ``[auth] scopes_supported`` (e.g. the scopes the
    rules and plugins require) when that key is empty."""
    if auth.oauth is None:
        raise ValueError("protected-resource metadata needs [auth.oauth]")
    document: dict[str, Any] = {
        "resource": auth.resource,
        "authorization_servers": [auth.oauth.issuer],
        "bearer_methods_supported": ["header"],
    }
    supported = list(auth.scopes_supported) or sorted(set(scopes))
    if supported:
        document["scopes_supported"] = supported
    return document


def serves_metadata(auth: AuthSettings) -> bool:
    return auth.oauth_enabled
