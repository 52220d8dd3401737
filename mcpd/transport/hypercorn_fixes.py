"""Fixes for three defects of hypercorn 0.18.0's trio worker (and the app-side half of one).

``apply`` also installs, one module per concern:

- ``hypercorn_idle``: the keep-alive timer, made cheap, and a fourth fix (a connection closed
  at graceful shutdown with a request already sent on it no longer pins its reader until
  ``graceful_timeout``; see ``hypercorn_idle.on_closing``);
- ``hypercorn_h11``: standard reason phrases in status lines, and a half-closed HTTP/1.1
  request answered instead of cancelled;
- ``hypercorn_h2``: HTTP/2 send buffers bounded (back-pressure on the app) and
  ``write_timeout`` applied to a flow-control window that stays closed;
- ``hypercorn_accept``: accepting paused, with one log event, while file descriptors run out
  (trio's accept loop); ``hypercorn_accept.serve`` is how the daemon starts hypercorn;
- ``lean_h11``: the lean HTTP/1.1 path, which serves plain HTTP/1.1 connections without
  hypercorn's per-request task, channel and locked writes, and hands h2 (ALPN) and h2c
  (prior knowledge, ``Upgrade: h2c``) to ``lean_h2``, which keeps ``hypercorn_h2``'s bounds
  (WebSocket stays hypercorn's, and with it the fixes above that concern it);

and skips the empty write that ends every Content-Length response.

This module owns every place where mcpd reaches into hypercorn's internals. `apply` replaces
``hypercorn.trio.tcp_server.TCPServer.protocol_send`` (the one coroutine through which a
connection writes to its socket); `send_final_body` is what the ASGI app calls instead of sending
its last ``http.response.body`` itself. The patch targets exactly hypercorn 0.18.0 (pinned in
pyproject): `apply` refuses any other version, because the replacement mirrors that version's
method and relies on its attributes (``stream``, ``send_lock``, ``protocol``, ``idle_task``).

A. An h2c client aborting mid-response takes the whole server down.
   Symptom: ``hypercorn.trio.serve`` raises ``trio.BusyResourceError`` ("another task is
   currently sending data on this SocketStream") when h2c clients send window updates and
   GOAWAY in one write and then drop the connection while responses stream (h2load does this
   when it stops). Cause: on GOAWAY the reader task calls ``TCPServer._close()``, whose
   ``stream.send_eof()`` does not take ``send_lock`` and holds the stream's send conflict
   detector across a checkpoint. The h2 sender task, woken by the window updates, has just
   taken ``send_lock`` (trio's ``Lock.acquire`` yields after acquiring) and now enters
   ``send_all``, which raises ``BusyResourceError``. ``protocol_send`` only catches
   Broken/Closed, so the error leaves the connection's task group and ``TCPServer.run``
   (which only catches ``OSError``), and the handler nursery of ``serve()`` re-raises it.
   Fix: under ``send_lock`` the only other sender is ``_close()``, so ``BusyResourceError``
   in ``protocol_send`` always means "this connection is being closed"; it is handled exactly
   like a broken connection. ``_close()`` needs no change: it already swallows
   ``BusyResourceError`` from ``send_eof`` (the opposite interleaving), then closes the
   socket. Taking ``send_lock`` in ``_close()`` instead would be worse: it runs in a
   ``finally`` of a possibly cancelled task, where waiting for the lock could skip the close.

B. The keep-alive idle timer never starts for apps that cancel themselves on
   ``http.disconnect``. Symptom: idle keep-alive connections stay open forever and graceful
   shutdown waits its full ``graceful_timeout``. Cause: inside the app's final body send,
   hypercorn delivers ``http.disconnect`` and then restarts its idle timer; the app's
   disconnect watcher runs in between and cancels the task that is restarting the timer.
   Fix (app side, `send_final_body`): shield the final send so that hypercorn's bookkeeping
   inside it runs to completion. The shield has a deadline because on h2 the final send waits
   for the stream's buffer to drain, which never happens once the connection is lost.
   (With ``hypercorn_idle`` installed, the idle switch is a deadline move that nothing can
   cancel, so B cannot occur there; the shield still covers configurations with a
   ``read_timeout``, which keep upstream's timer task.)

C. A client that stops reading blocks its connection, and graceful shutdown, forever.
   Symptom: ``serve()`` never returns after the shutdown trigger while such a client is
   connected. Cause: ``protocol_send`` runs ``send_all`` in a shielded scope with no deadline
   (the shield keeps a cancelled app task from leaving half a frame on the wire), so not even
   the graceful-shutdown deadline can end it. Fix: keep the shield but give it a deadline
   (``write_timeout`` per 64 KiB written, i.e. a bound on a write making no progress), and on
   expiry abort the connection and report it closed, exactly as for a broken one. A write cut
   off midway leaves the byte stream unusable, so aborting (not retrying) is the only correct
   continuation; the RST also frees the kernel buffers the stalled peer would pin.
"""

from __future__ import annotations

import importlib.metadata
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any, Final

import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.tcp_server import TCPServer

from mcpd.transport import hypercorn_accept, hypercorn_h2, hypercorn_h11, hypercorn_idle

PINNED_VERSION: Final = "0.18.0"

# `write_timeout` bounds each slice rather than a whole event, so it measures a stalled peer,
# not a big body: a slow client that keeps reading is never cut off.
_WRITE_SLICE: Final = 2**16

# Bounds the shield of `send_final_body`: on h2 the final send waits until the stream's buffer
# drains, and hypercorn never releases that wait when the connection is lost.
FINAL_SEND_GRACE: Final = 5.0

# l_onoff=1, l_linger=0: close() sends RST and drops unsent data at once.
_ABORTIVE_LINGER: Final = struct.pack("ii", 1, 0)

Send = Callable[[dict[str, Any]], Awaitable[None]]
_ProtocolSend = Callable[[TCPServer, Event], Coroutine[Any, Any, None]]


def apply(
    *,
    write_timeout: float,
    h2_max_buffer_bytes: int = hypercorn_h2.DEFAULT_MAX_BUFFER_BYTES,
    on_accept_paused: Callable[[], None] | None = None,
) -> None:
    """Patch hypercorn's trio ``TCPServer`` against defects A and C (see module docstring).

    ``write_timeout`` is how long (seconds) writing 64 KiB to one connection may take before
    that connection is aborted as broken, and how long an HTTP/2 stream's flow-control window
    may stay closed with bytes waiting. ``h2_max_buffer_bytes`` bounds what one HTTP/2
    connection buffers. ``on_accept_paused`` is called each time accepting pauses at the
    descriptor limit. Idempotent: calling it again only replaces these values (the patches
    never wrap what they replace).

    Example::

        hypercorn_fixes.apply(write_timeout=30.0)
        await hypercorn_accept.serve(app, config, shutdown_trigger=stop.wait)
    """
    installed = importlib.metadata.version("hypercorn")
    if installed != PINNED_VERSION:
        raise RuntimeError(
            f"mcpd patches hypercorn {PINNED_VERSION} internals, found hypercorn {installed}"
        )
    if not write_timeout > 0:
        raise ValueError(f"write_timeout must be positive, got {write_timeout!r}")
    # Replacing the method on the class is the patch itself, which mypy rejects by design.
    patched = _protocol_send_with_timeout(write_timeout)
    TCPServer.protocol_send = patched  # type: ignore[method-assign, assignment]
    hypercorn_idle.install()
    hypercorn_h11.install()
    hypercorn_h2.install(max_buffer_bytes=h2_max_buffer_bytes, stall_timeout=write_timeout)
    hypercorn_accept.install(on_accept_paused)
    from mcpd.transport import lean_h11  # it imports this module: load it once we are set up

    lean_h11.install(write_timeout=write_timeout)


# A socket buffer absorbs this much at once, so sending it shielded cannot stall.
SHIELDED_BODY_LIMIT = 64 * 1024


async def send_final_body(
    send: Send, body: bytes = b"", *, grace: float = FINAL_SEND_GRACE
) -> None:
    """Send the last ``http.response.body`` so that hypercorn can start its idle timer (defect B).

    Call it for every response's final body instead of sending ``more_body: False`` directly.
    A ``body`` larger than ``SHIELDED_BODY_LIMIT`` is sent first as an ordinary, cancellable
    message; the closing message (with a small body) is then sent shielded for at most ``grace``
    seconds (if that runs out, the connection was lost or stalled and hypercorn finishes the
    stream when the app returns).

    Example::

        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send_final_body(send, b"done")
    """
    if getattr(getattr(send, "__self__", None), "skips_final_shield", False):
        # The lean HTTP/1.1 path runs no timer inside its sends: there is nothing to protect.
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    if len(body) > SHIELDED_BODY_LIMIT:
        # Large data stays cancellable: a big body to a slow client must not be protected by
        # the bounded shield below, and a client that left needs no more data. Small bodies
        # (nearly every JSON answer) go in the final message: one send instead of two.
        await send({"type": "http.response.body", "body": body, "more_body": True})
        body = b""
    # hypercorn delivers http.disconnect and then restarts its keep-alive idle timer inside
    # this very send, i.e. in the app's task. An app that cancels itself on http.disconnect
    # would cancel the timer start, leaving the idle connection open forever and graceful
    # shutdown waiting its whole graceful_timeout. The shield lets that bookkeeping finish;
    # its deadline stops a lost h2 connection (whose buffer never drains) from pinning us.
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + grace
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _protocol_send_with_timeout(write_timeout: float) -> _ProtocolSend:
    """hypercorn 0.18.0's ``TCPServer.protocol_send``, with fixes A and C in the write path."""

    async def protocol_send(self: TCPServer, event: Event) -> None:
        if isinstance(event, RawData):
            if not event.data:
                # h11 ends every Content-Length response with an empty write; skipping it
                # saves a lock and a shielded send per request. A closed stream is still
                # noticed: by the reader, and by the next real write.
                return
            async with self.send_lock:
                if not await _write(self.stream, event.data, write_timeout):
                    # The reader must stop too: it may be waiting on a half-closed client.
                    hypercorn_idle.on_closing(self)
                    await self.protocol.handle(Closed())
        elif isinstance(event, Closed):
            hypercorn_idle.on_closing(self)
            await self._close()
            await self.protocol.handle(Closed())
        elif isinstance(event, Updated):
            if hypercorn_idle.on_updated(self, event.idle):
                return
            if event.idle:
                await self.idle_task.restart(self._task_group, self._idle_timeout)
            else:
                await self.idle_task.stop()

    return protocol_send


async def _write(stream: trio.abc.Stream, data: bytes, write_timeout: float) -> bool:
    """Write ``data`` under a shield; False if the connection is gone (and is now closed)."""
    view = memoryview(data)
    for start in range(0, len(view), _WRITE_SLICE):
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + write_timeout
                await stream.send_all(view[start : start + _WRITE_SLICE])
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            # Busy: _close() is sending EOF without our lock, so the connection is closing (A).
            return False
        if scope.cancelled_caught:
            await _abort(stream)  # the peer stopped reading (C)
            return False
    return True


async def _abort(stream: trio.abc.Stream) -> None:
    """Close a stalled connection with RST: its unsent bytes will never be read."""
    transport = getattr(stream, "transport_stream", stream)  # the TCP stream under TLS
    if isinstance(transport, trio.SocketStream):
        # OSError: the peer already reset the connection; a plain close is just as good.
        with suppress(OSError):
            transport.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORTIVE_LINGER)
    # Shielded so that a cancelled caller still releases the socket; aclose() never blocks.
    with trio.CancelScope(shield=True):
        await stream.aclose()
