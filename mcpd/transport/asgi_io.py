"""Small ASGI plumbing: headers, the body reader with its size cap, the disconnect watcher."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import trio

from mcpd.protocol.errors import McpError, PayloadTooLarge, RequestTimeout
from mcpd.protocol.jsonrpc import RequestId, dumps, error_message
from mcpd.transport.exchange import JSON_HEADERS, Send, send_response

Receive = Callable[[], Awaitable[dict[str, Any]]]
Scope = dict[str, Any]


class ClientGone(Exception):
    """The client disconnected before its request was complete."""


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names (ASGI guarantees that) to str values."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


# Sent with answers after which the connection cannot be reused (a body left unread).
CLOSE: tuple[tuple[bytes, bytes], ...] = ((b"connection", b"close"),)


async def read_body(
    receive: Receive, headers: dict[str, str], limit: int, within: float = math.inf
) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes in total (413) and a body
    still incomplete after ``within`` seconds (408).

    The declared Content-Length is checked first, but the count of bytes actually read is
    what is enforced: a chunked body declares nothing. The timeout bounds the whole body, not
    each read, so a client dribbling a byte at a time cannot hold its task either.
    """
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    with trio.move_on_after(within):
        return await _read_chunks(receive, limit)
    raise RequestTimeout(f"the request body did not arrive within {within:g}s")


async def _read_chunks(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def reject(
    send: Send,
    error: McpError,
    request_id: RequestId | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Refuse a request with the error's HTTP status and a JSON-RPC error body."""
    body = dumps(error_message(request_id, error))
    await send_response(send, error.http_status, body, [*JSON_HEADERS, *headers])
