"""The I/O every long-lived SSE response shares: writing events, keep-alives, and noticing
that the client left."""

from __future__ import annotations

import trio

from mcpd.protocol import sse
from mcpd.transport.asgi_io import Receive
from mcpd.transport.exchange import Send
from mcpd.transport.hypercorn_h11 import HALF_CLOSED


async def write(send: Send, chunk: bytes) -> None:
    """One piece of an open response body (an event, a comment)."""
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def until_disconnect(receive: Receive, scope: trio.CancelScope, send: Send) -> None:
    """Cancel ``scope`` once the client closes the connection.

    A client's EOF (``HALF_CLOSED``) is answered with a keep-alive at once: a client that
    only half-closed reads on, one that closed resets the connection, which hypercorn then
    reports as ``http.disconnect``.
    """
    while (kind := (await receive())["type"]) != "http.disconnect":
        if kind == HALF_CLOSED:
            await write(send, sse.KEEPALIVE)
    scope.cancel(reason="client disconnected")


async def keep_alive(send: Send, interval: float) -> None:
    """A comment every ``interval`` seconds, so proxies and clients keep the stream open."""
    while True:
        await trio.sleep(interval)
        await write(send, sse.KEEPALIVE)
