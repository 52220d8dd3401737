"""The legacy GET stream: a session's server→client SSE channel.

It stays open until the client leaves, the session ends, or the daemon shuts down, sending
comment keep-alives so that proxies and clients do not time it out.
"""

from __future__ import annotations

import contextlib

import trio

from mcpd.protocol import sse
from mcpd.protocol.errors import TransportError
from mcpd.runtime.sessions import Session
from mcpd.transport.asgi_io import Receive
from mcpd.transport.exchange import Send
from mcpd.transport.hypercorn_fixes import send_final_body


class StreamConflict(TransportError):
    http_status = 409


async def serve_get_stream(
    session: Session, receive: Receive, send: Send, keepalive: float
) -> None:
    """Hold one GET stream for ``session`` (one at a time: a second gets 409)."""
    if session.streams:
        raise StreamConflict("this session already has a GET stream open")
    session.streams += 1
    try:
        headers = [*sse.HEADERS, (b"mcp-session-id", session.id.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_disconnect, receive, nursery.cancel_scope)
            nursery.start_soon(_keep_alive, send, keepalive)
            await session.wait_closed()
            nursery.cancel_scope.cancel(reason="session ended")
        # The session ended (DELETE, expiry, shutdown): end the stream cleanly.
        with contextlib.suppress(Exception):
            await send_final_body(send, b"")
    finally:
        session.streams -= 1
        session.touch()


async def _until_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel(reason="client disconnected")


async def _keep_alive(send: Send, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        await send({"type": "http.response.body", "body": sse.KEEPALIVE, "more_body": True})
