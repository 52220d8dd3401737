"""Refusals at the HTTP layer that carry headers of their own: ``Allow`` (405),
``Retry-After`` (429), ``WWW-Authenticate`` (401, 403), and the 401 itself."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

from mcpd.auth.authenticator import Unauthenticated
from mcpd.protocol.errors import (
    LimitExceeded,
    McpError,
    MethodNotAllowed,
    ServerUnavailable,
    Unauthorized,
)
from mcpd.runtime.access import Forbidden
from mcpd.transport.asgi_io import CLOSE, reject
from mcpd.transport.exchange import Send

_ALLOW: Final = ((b"allow", b"GET, POST, DELETE"),)


def extra_headers(error: McpError) -> tuple[tuple[bytes, bytes], ...]:
    if isinstance(error, MethodNotAllowed):
        return _ALLOW
    if isinstance(error, LimitExceeded):
        return tuple(error.headers())
    if isinstance(error, Forbidden):
        return challenge_headers(error.headers)
    return ()


def challenge_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    """Auth headers as sent: ``WWW-Authenticate`` title-cased (some clients match it so)."""
    return tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)


async def reject_unauthenticated(send: Send, refusal: Unauthenticated) -> None:
    """401 (or 503 while tokens cannot be checked) with its challenge, before anything ran.

    The body is a JSON-RPC error like every refusal of the endpoint, carrying the OAuth
    error (``invalid_token``...) as its data; the body of the request is never read, so the
    connection is not reused.
    """
    try:
        oauth_error = json.loads(refusal.body)
    except ValueError:
        oauth_error = None
    kind = Unauthorized if refusal.status == 401 else ServerUnavailable
    error = kind(refusal.failure.detail, data=oauth_error)
    await reject(send, error, None, (*challenge_headers(refusal.headers), *CLOSE))
