"""The legacy GET stream: a session's server→client SSE channel.

It carries what the session posts for it (list changes, updates of subscribed resources),
and stays open until the client leaves, the session ends, or the daemon shuts down, sending
comment keep-alives so that proxies and clients do not time it out. Messages posted while no
GET stream is open wait in the session's bounded outbox.
"""

from __future__ import annotations

import contextlib

import trio

from mcpd.protocol import sse
from mcpd.protocol.errors import TransportError
from mcpd.protocol.jsonrpc import dumps
from mcpd.protocol.resume import EventLog
from mcpd.runtime.sessions import Session
from mcpd.transport import sse_io
from mcpd.transport.asgi_io import Receive
from mcpd.transport.exchange import Send
from mcpd.transport.hypercorn_fixes import send_final_body


class StreamConflict(TransportError):
    http_status = 409


class StreamGone(TransportError):
    """A resume names events the session no longer keeps."""

    http_status = 410


async def serve_get_stream(
    session: Session,
    receive: Receive,
    send: Send,
    keepalive: float,
    *,
    log: EventLog | None = None,
    after: int | None = None,
    prime: bool = False,
) -> None:
    """Hold one GET stream for ``session`` (one at a time: a second gets 409).

    With ``log`` its events carry ids and are kept; ``after`` (from ``Last-Event-ID``)
    replays what followed that event first.
    """
    if session.streams:
        raise StreamConflict("this session already has a GET stream open")
    missed: list[bytes] = []
    if log is not None and after is not None:
        replay = log.after(after)
        if replay is None:
            raise StreamGone("those events are no longer kept; reopen the stream without them")
        missed = replay
    session.streams += 1
    try:
        headers = [*sse.HEADERS, (b"mcp-session-id", session.id.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if log is not None and prime and after is None:
            await sse_io.write(send, log.priming())
        for framed in missed:
            await sse_io.write(send, framed)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sse_io.until_disconnect, receive, nursery.cancel_scope, send)
            nursery.start_soon(sse_io.keep_alive, send, keepalive)
            nursery.start_soon(_forward, session, send, log)
            await session.wait_closed()
            nursery.cancel_scope.cancel(reason="session ended")
        # The session ended (DELETE, expiry, shutdown): end the stream cleanly.
        with contextlib.suppress(Exception):
            await send_final_body(send, b"")
    finally:
        session.streams -= 1
        session.touch()


async def _forward(session: Session, send: Send, log: EventLog | None) -> None:
    """Send what the session posts for its GET stream (list changes, resource updates)."""
    while True:
        data = dumps(await session.next_posted())
        # Logged before it is written: if the write fails, a resume still delivers it.
        await sse_io.write(send, log.record(data) if log is not None else sse.event(data))
