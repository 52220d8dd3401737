"""Find an issuer's ``jwks_uri`` from its metadata, when only ``issuer`` is configured.

Tried in order: RFC 8414 (``/.well-known/oauth-authorization-server`` inserted before the
issuer's path), then OpenID Connect Discovery (``<issuer>/.well-known/openid-configuration``),
then the RFC 8414 form of the latter. A document counts only if its ``issuer`` is exactly the
configured one (RFC 8414 section 3.3), which stops a metadata mix-up.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx

from mcpd.auth.fetch import Unavailable, get_json
from mcpd.auth.settings import check_url


def metadata_urls(issuer: str) -> list[str]:
    parts = urllib.parse.urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}{path}/.well-known/openid-configuration",
        f"{origin}/.well-known/openid-configuration{path}",
    ]
    return list(dict.fromkeys(urls))  # a root issuer makes the last two the same


def jwks_uri_of(document: Any, issuer: str, url: str) -> str:
    """The ``jwks_uri`` of one metadata document, checked."""
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise Unavailable(f"{url}: metadata for another issuer")
    uri = document.get("jwks_uri")
    if not isinstance(uri, str):
        raise Unavailable(f"{url}: no jwks_uri")
    try:
        return check_url(uri, "jwks_uri")
    except ValueError as exc:
        raise Unavailable(f"{url}: {exc}") from None


async def discover_jwks_uri(client: httpx.AsyncClient, issuer: str, *, time_limit: float) -> str:
    problems: list[str] = []
    for url in metadata_urls(issuer):
        try:
            return jwks_uri_of(await get_json(client, url, time_limit=time_limit), issuer, url)
        except Unavailable as exc:
            problems.append(str(exc))
    raise Unavailable("no usable issuer metadata: " + "; ".join(problems))
