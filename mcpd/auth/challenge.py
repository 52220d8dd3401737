"""``WWW-Authenticate`` challenges (RFC 6750 section 3, RFC 9728 section 5.1) and error bodies.

- 401 without a token: ``Bearer resource_metadata="<absolute URL>", scope="..."``: no
  ``error`` attribute (RFC 6750 section 3.1: a request that sent no credentials gets none).
- 401 with a bad token: the same plus ``error="invalid_token"``.
- 403: ``Bearer error="insufficient_scope", scope="<every scope the operation needs>",
  resource_metadata="..."``: every scope at once, so a client steps up in one round trip.
- keys-only mode: ``Bearer realm="mcpd"`` and nothing else on 401 (no OAuth hints: clients
  that see them drop the static key); 403 adds ``error`` and ``scope``.

Scopes are RFC 6749 scope tokens (validated in the config and the plugin decorators), so
they never need escaping inside the quoted strings. The header name is sent title-cased,
``WWW-Authenticate``: some clients match it case-sensitively on HTTP/1.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

from mcpd.auth.metadata import metadata_url
from mcpd.auth.settings import AuthSettings

HEADER: Final = "WWW-Authenticate"
Headers = list[tuple[str, str]]


def _scope_value(scopes: Iterable[str]) -> str:
    return " ".join(sorted(set(scopes)))


def _params(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f'{name}="{value}"' for name, value in pairs)


def unauthorized(auth: AuthSettings, *, token_sent: bool, scopes: Iterable[str] = ()) -> Headers:
    """The 401 challenge. ``scopes`` (default ``[auth] scopes_supported``) guide the client."""
    if not auth.oauth_enabled:
        return [(HEADER, f'Bearer realm="{auth.realm}"')]
    pairs: list[tuple[str, str]] = []
    if token_sent:
        pairs.append(("error", "invalid_token"))
    pairs.append(("resource_metadata", metadata_url(auth.resource)))
    scope = _scope_value(scopes or auth.scopes_supported)
    if scope:
        pairs.append(("scope", scope))
    return [(HEADER, f"Bearer {_params(pairs)}")]


def insufficient_scope(auth: AuthSettings, required: Iterable[str]) -> Headers:
    """The 403 challenge naming every scope the operation needs."""
    pairs = [("error", "insufficient_scope"), ("scope", _scope_value(required))]
    if auth.oauth_enabled:
        pairs.append(("resource_metadata", metadata_url(auth.resource)))
    else:
        pairs.insert(0, ("realm", auth.realm))
    return [(HEADER, f"Bearer {_params(pairs)}")]


def error_body(error: str, description: str, **extra: str) -> bytes:
    """An OAuth-style JSON error body (``{"error", "error_description"}``) for 401/403/503."""
    return json.dumps({"error": error, "error_description": description, **extra}).encode()
