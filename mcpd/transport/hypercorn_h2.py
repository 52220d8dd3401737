"""HTTP/2 send buffers with a bound, and the write timeout applied to a closed flow-control window.

Defect (hypercorn 0.18.0, ``protocol/h2.py``): a client that never opens its flow-control
window makes the server buffer a response without limit. Each ``StreamBuffer.push`` waits for
its ``_paused`` event, which ``pop`` sets whenever it returns less than 16 KiB; with the window
closed, the sender pops 0 bytes for every push (each push unblocks its stream), so every push
is released at once and the buffer grows by everything the app sends (one stream took a daemon
from 48 to 532 MB of RSS in a second). And nothing bounds how long the window may stay shut:
the app's final send waits for the buffer to drain forever.

Fix (``BoundedH2Protocol``, installed by ``hypercorn_fixes.apply``):

- Back-pressure. Response bytes wait in a per-stream ``SendBuffer``; one stream holds at most
  ``STREAM_BUFFER_BYTES`` (the protocol's default window), one connection at most
  ``max_buffer_bytes`` over all its streams (``[server] h2_max_buffer_bytes``). An app's send
  is copied in as room frees up, and returns only once all of it is buffered: a client that
  does not read holds the app, not the server's memory. A stalled stream cannot take more
  than its share, so the connection's other streams keep flowing.
- A stall ends. A stream whose buffered bytes cannot move because its window (or the
  connection's) stays at 0 for ``stall_timeout`` seconds (``[server] write_timeout_seconds``,
  "seconds without progress", as for a socket write) is reset with RST_STREAM (CANCEL); if the
  connection's own window is the one that stayed shut, the whole connection is closed with
  GOAWAY (CANCEL). The app then sees ``http.disconnect`` and its pending and later sends
  return without effect, exactly as when the client resets the stream itself.

hypercorn's sender task, its priority tree and its other stream events are kept; only the
buffer, the body path into it and the sender's pop are replaced. Pinned to hypercorn 0.18.0.

Since the lean h2 path (``mcpd.transport.lean_h2``), which applies the same bounds, serves
ALPN h2 and h2c (prior knowledge, and an ``Upgrade: h2c`` without a body), this protocol
serves what is left of HTTP/2 on hypercorn: an upgrade request with a body or without
``HTTP2-Settings``, and every connection when a ``read_timeout`` is configured. Its class
attributes are also where the lean path reads the two bounds from.
"""

from __future__ import annotations

import math
from contextlib import suppress
from typing import Any, Final

import h2.errors
import h2.exceptions
import hypercorn.protocol
import hypercorn.protocol.h2
import structlog
import trio
from hypercorn.events import Closed, Event
from hypercorn.protocol.events import Body, Data, StreamClosed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h2 import H2Protocol
from priority.priority import DeadlockError, MissingStreamError

log = structlog.get_logger("mcpd.transport")

# What one stream may hold: the protocol's default initial window, so that a client on
# default settings can always be sent a full window's worth at once.
STREAM_BUFFER_BYTES: Final = 2**16
DEFAULT_MAX_BUFFER_BYTES: Final = 2**20
CANCEL: Final = h2.errors.ErrorCodes.CANCEL
_CLOSE_REASON: Final = b"flow-control window closed for longer than the write timeout"


class SendBuffer:
    """One stream's response bytes waiting for the peer's flow-control window.

    Takes the place of hypercorn's ``StreamBuffer`` (same constructor, ``complete``,
    ``set_complete`` and ``drain``); the protocol below does the waiting and the accounting.
    """

    __slots__ = ("_drained", "data", "finished")

    def __init__(self, event_class: object = None) -> None:
        self.data = bytearray()
        self.finished = False  # the app sent its last body (or the stream was dropped)
        self._drained = trio.Event()
        self._drained.set()

    @property
    def complete(self) -> bool:
        return self.finished and not self.data

    def set_complete(self) -> None:
        self.finished = True

    async def drain(self) -> None:
        """Wait until every buffered byte was sent (or dropped)."""
        await self._drained.wait()

    def put(self, chunk: memoryview) -> None:
        self.data += chunk
        if self._drained.is_set():
            self._drained = trio.Event()

    def pop(self, limit: int) -> bytes:
        chunk = bytes(self.data[:limit])
        del self.data[:limit]
        if not self.data:
            self._drained.set()
        return chunk

    def drop(self) -> int:
        """Discard what is left (the stream is gone); returns how many bytes that was."""
        dropped = len(self.data)
        self.data = bytearray()
        self.finished = True
        self._drained.set()
        return dropped


class BoundedH2Protocol(H2Protocol):
    """hypercorn's ``H2Protocol`` with bounded send buffers and stalled windows timed out."""

    # Set by ``install``; class-wide like the rest of mcpd's hypercorn patches.
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES
    stall_timeout: float = 30.0
    # Made by H2Protocol._create_stream, as SendBuffer once installed.
    stream_buffers: dict[int, SendBuffer]  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffered = 0  # bytes held in this connection's send buffers
        self._room = trio.lowlevel.ParkingLot()  # sends waiting for buffer space
        self._stalled: dict[int, float] = {}  # stream id -> since when its bytes cannot move

    # -- the app's side -------------------------------------------------------------------

    async def stream_send(self, event: StreamEvent) -> None:
        if isinstance(event, Body | Data):
            await self._buffer(event.stream_id, memoryview(event.data))
        else:
            await super().stream_send(event)

    async def _buffer(self, stream_id: int, data: memoryview) -> None:
        """Copy ``data`` into the stream's buffer as room frees up (back-pressure)."""
        while data:
            buffer = self.stream_buffers.get(stream_id)
            if buffer is None or buffer.finished:
                return  # the stream is gone: dropped, as hypercorn drops sends after a reset
            room = min(
                STREAM_BUFFER_BYTES - len(buffer.data), self.max_buffer_bytes - self.buffered
            )
            if room <= 0:
                await self._room.park()
                continue
            buffer.put(data[:room])
            self.buffered += min(room, len(data))
            data = data[room:]
            try:
                self.priority.unblock(stream_id)
            except MissingStreamError:
                return
            await self.has_data.set()

    # -- the sender's side ----------------------------------------------------------------

    async def send_task(self) -> None:
        while not self.closed:
            if self._stalled and trio.current_time() >= self._stall_deadline():
                await self._end_stalled()
                continue
            try:
                stream_id = next(self.priority)
            except DeadlockError:
                with trio.move_on_at(self._stall_deadline()):
                    await self.has_data.wait()
                await self.has_data.clear()
            else:
                await self._send_data(stream_id)

    async def _send_data(self, stream_id: int) -> None:
        try:
            window = self.connection.local_flow_control_window(stream_id)
            buffer = self.stream_buffers[stream_id]
            size = max(0, min(window, self.connection.max_outbound_frame_size))
            data = self._take(buffer, size)
            if data:
                self._stalled.pop(stream_id, None)
                self.connection.send_data(stream_id, data)
                await self._flush()
            else:
                if buffer.data:  # bytes to send, but no window to send them in
                    self._stalled.setdefault(stream_id, trio.current_time())
                self.priority.block(stream_id)
            if buffer.complete:
                self.connection.end_stream(stream_id)
                await self._flush()
                self._forget(stream_id)
        except (h2.exceptions.StreamClosedError, KeyError, h2.exceptions.ProtocolError):
            self._forget(stream_id)  # the stream or connection closed meanwhile

    def _take(self, buffer: SendBuffer, size: int) -> bytes:
        data = buffer.pop(size)
        self._release(len(data))
        return data

    def _release(self, size: int) -> None:
        if size:
            self.buffered -= size
            self._room.unpark_all()

    def _forget(self, stream_id: int) -> None:
        buffer = self.stream_buffers.pop(stream_id, None)
        if buffer is not None:
            self.buffered -= buffer.drop()
        self._room.unpark_all()  # sends to this stream return; others may have room now
        self._stalled.pop(stream_id, None)
        with suppress(MissingStreamError):
            self.priority.remove_stream(stream_id)

    # -- stalls ---------------------------------------------------------------------------

    def _stall_deadline(self) -> float:
        if not self._stalled:
            return math.inf
        return min(self._stalled.values()) + self.stall_timeout

    async def _end_stalled(self) -> None:
        """Reset the streams that made no progress for ``stall_timeout`` (or the connection)."""
        if self.connection.outbound_flow_control_window <= 0:
            await self._close_stalled_connection()
            return
        now = trio.current_time()
        expired = [s for s, since in self._stalled.items() if now >= since + self.stall_timeout]
        for stream_id in expired:
            buffer = self.stream_buffers.get(stream_id)
            log.info(
                "h2.stream_stalled",
                stream_id=stream_id,
                buffered_bytes=len(buffer.data) if buffer is not None else 0,
                write_timeout_seconds=self.stall_timeout,
                action="stream reset",
            )
            self._forget(stream_id)
            with suppress(h2.exceptions.ProtocolError):
                self.connection.reset_stream(stream_id, error_code=CANCEL)
            await self._flush()
            # What a closed stream goes through: the app hears http.disconnect, idle updates.
            await super().stream_send(StreamClosed(stream_id=stream_id))

    async def _close_stalled_connection(self) -> None:
        log.info(
            "h2.connection_stalled",
            streams=len(self._stalled),
            buffered_bytes=self.buffered,
            write_timeout_seconds=self.stall_timeout,
            action="connection closed",
        )
        self._stalled.clear()
        self.connection.close_connection(error_code=CANCEL, additional_data=_CLOSE_REASON)
        await self._flush()
        await self.send(Closed())

    # -- the connection's end -------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        await super().handle(event)
        if isinstance(event, Closed):
            for stream_id in list(self.stream_buffers):
                self._forget(stream_id)
            self._room.unpark_all()  # waiting sends return: their stream is gone


def install(*, max_buffer_bytes: int, stall_timeout: float) -> None:
    """Serve HTTP/2 through ``BoundedH2Protocol``. Idempotent (replaces, never wraps)."""
    if max_buffer_bytes < 1:
        raise ValueError(f"max_buffer_bytes must be at least 1, got {max_buffer_bytes!r}")
    BoundedH2Protocol.max_buffer_bytes = max_buffer_bytes
    BoundedH2Protocol.stall_timeout = stall_timeout
    # H2Protocol._create_stream builds its buffers by this module-level name, and
    # ProtocolWrapper builds the protocol (prior knowledge, h2c upgrade, ALPN) by this one.
    hypercorn.protocol.h2.StreamBuffer = SendBuffer  # type: ignore[misc, assignment]
    hypercorn.protocol.H2Protocol = BoundedH2Protocol  # type: ignore[attr-defined]
