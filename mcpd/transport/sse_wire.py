"""Where a 2024-11-05 SSE connection's bytes go: the response hypercorn serves, or a socket
this process took over from the last one.

A ``GET /sse`` connection outlives a restart when systemd keeps it (``mcpd.transport.http_sse``):
the process that served it detaches the socket mid-response (``AsgiWire.detach``) and hands it
to the fd store; the next one writes the rest of the same chunked body straight to the socket
(``SocketWire``). Both are a ``Wire`` to the code that streams the session's messages.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Protocol

import trio

from mcpd.transport import sse_io
from mcpd.transport.asgi_io import Receive, Scope
from mcpd.transport.exchange import Send
from mcpd.transport.hypercorn_fixes import send_final_body
from mcpd.transport.lean_cycle import DETACH
from mcpd.transport.lean_io import ConnectionIO, Gone

CLIENT_LEFT = "client disconnected"
_LAST_CHUNK = b"0\r\n\r\n"


class Wire(Protocol):
    """An open SSE response body."""

    async def write(self, chunk: bytes) -> None:
        """One piece of the body (an event, a comment); a failed write ends ``watch``'s scope."""

    async def watch(self, scope: trio.CancelScope) -> None:
        """Cancel ``scope`` once the client has gone."""

    def detach(self) -> int | None:
        """A duplicate of the socket, the body left open for someone else to continue;
        None if this wire cannot be carried on."""

    async def finish(self) -> None:
        """End the body cleanly (the connection then closes: its head said so)."""


class AsgiWire:
    """The response of a ``GET /sse`` request, through ASGI."""

    __slots__ = ("_receive", "_scope", "_send")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send

    async def write(self, chunk: bytes) -> None:
        await sse_io.write(self._send, chunk)

    async def watch(self, scope: trio.CancelScope) -> None:
        await sse_io.until_disconnect(self._receive, scope, self._send)

    def detach(self) -> int | None:
        # Only the lean HTTP/1.1 path offers it (plain TCP); hypercorn's own protocols and
        # TLS connections cannot be carried past the process.
        detach = self._scope.get("extensions", {}).get(DETACH)
        return None if detach is None else detach()

    async def finish(self) -> None:
        with contextlib.suppress(Exception):
            await send_final_body(self._send, b"")


class SocketWire:
    """A connection taken over mid-response: its chunked body goes on, one chunk per write.

    What the client sends on it (nothing, normally: its messages come as POSTs) is read and
    dropped; its EOF or a reset ends the connection (no half-close probe here).
    """

    __slots__ = ("_io", "_lost", "_stream")

    def __init__(self, fd: int, write_timeout: float) -> None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._io = ConnectionIO(self._stream, write_timeout)
        self._lost: trio.CancelScope | None = None

    async def write(self, chunk: bytes) -> None:
        if not await self._io.write([b"%x\r\n" % len(chunk), chunk, b"\r\n"]):
            self._gone()

    async def watch(self, scope: trio.CancelScope) -> None:
        self._lost = scope
        with contextlib.suppress(Gone):
            while await self._io.receive():
                pass
        self._gone()

    def _gone(self) -> None:
        self._io.broken = True
        if self._lost is not None:
            self._lost.cancel(reason=CLIENT_LEFT)

    def detach(self) -> int | None:
        if self._io.broken:
            return None
        return os.dup(self._stream.socket.fileno())

    async def finish(self) -> None:
        await self._io.write([_LAST_CHUNK])

    async def close(self) -> None:
        """Close this process's descriptor (no shutdown: a detached duplicate lives on)."""
        with trio.CancelScope(shield=True):
            await self._stream.aclose()
