"""The sending half of a lean HTTP/2 connection (``mcpd.transport.lean_h2``): response bytes
into h2's frames as far as the peer's flow-control windows admit, the rest held within bounds,
stalls timed out, and h2's output written under the connection's one write lock.

Bounds, as ``hypercorn_h2.BoundedH2Protocol`` sets them: a stream holds at most
``STREAM_BUFFER_BYTES``, a connection at most ``h2_max_buffer_bytes`` over all its streams, and
an app's send returns only once all of its bytes are sent or held (back-pressure: a client that
does not read holds the app, not the server's memory). A stream whose held bytes cannot move
for ``write_timeout`` is reset (CANCEL); if the connection's own window is the one shut, the
connection is closed (GOAWAY CANCEL). A window that opens moves held bytes a frame per stream
in turn. Whoever holds the write lock writes until h2 has nothing left to send, so frames
queued meanwhile (another stream's, the reader's acknowledgements) join the same write.
"""

from __future__ import annotations

import math
from contextlib import suppress
from typing import Final

import h2.connection
import h2.errors
import h2.exceptions
import structlog
import trio

from mcpd.transport.hypercorn_h2 import STREAM_BUFFER_BYTES
from mcpd.transport.lean_h2_stream import Stream
from mcpd.transport.lean_io import ConnectionIO

log = structlog.get_logger("mcpd.transport")

# What one send puts into h2's frames before writing them: a large body with wide windows
# goes out in writes of this size, so h2's own buffer never holds much more.
BATCH: Final = 4 * STREAM_BUFFER_BYTES
CANCEL: Final = h2.errors.ErrorCodes.CANCEL
_EMPTY: Final = memoryview(b"")
_STALL_REASON: Final = b"flow-control window closed for longer than the write timeout"


class H2Send:
    """What ``LeanH2`` sends with; it owns the attributes below and the two hooks."""

    h2: h2.connection.H2Connection
    io: ConnectionIO
    buffered: int  # response bytes held in this connection's streams
    told_close: bool
    _lock: trio.Lock
    _waiting: dict[int, Stream]  # streams with bytes the windows hold back
    _room: trio.lowlevel.ParkingLot  # sends waiting for buffer room
    _max_buffer: int
    _stall_timeout: float
    _read_scope: trio.CancelScope | None
    _ending: bool

    def _forget(self, stream: Stream) -> None:
        """The stream may be done with: the connection's bookkeeping (``LeanH2``)."""
        raise NotImplementedError

    def _write_failed(self) -> None:
        """A write failed: the connection is lost (``LeanH2``)."""
        raise NotImplementedError

    async def send_body(self, stream: Stream, data: memoryview, *, end: bool) -> None:
        """Send ``data`` on the stream (its held head first), as far as the peer's windows
        admit; hold the rest within the buffer bounds, waiting for room as long as needed."""
        if stream.gone:
            return
        if stream.head is not None:
            self._send_head(stream, end=end and not data)
        while not stream.h2_done:
            data = self._transmit(stream, data, end, BATCH)
            if data and self._window(stream) > 0:
                await self.flush()  # a batch is full: write it, then go on
                continue
            data = self._hold(stream, data)
            self._settle(stream)
            if not data:
                break
            await self.flush()
            if self._room_for(stream) <= 0 and not stream.gone:
                await self._room.park()
        if end:
            stream.finished = True
            if stream.pending:
                await self._drain_before_end(stream)
        self._settle(stream)
        await self.flush()

    async def _drain_before_end(self, stream: Stream) -> None:
        """The last send of a stream the windows held back: wait until its bytes are out, then
        END_STREAM in a write of its own, a scheduler pass later (as hypercorn's sender does).
        A client that acknowledges each read learns of the end after it opened the window for
        the last bytes, not in the same read: it never sends WINDOW_UPDATE on a closed stream
        (which the ``h2`` library refuses to do)."""
        stream.draining = True
        try:
            await self.flush()  # the head, and what the windows let through
            while stream.pending and not stream.gone:
                await self._room.park()  # woken as bytes leave (or the stream is dropped)
            await trio.lowlevel.checkpoint()
        finally:
            stream.draining = False

    def _send_head(self, stream: Stream, *, end: bool) -> None:
        head, stream.head = stream.head or [], None
        try:
            self.h2.send_headers(stream.id, head, end_stream=end)
        except h2.exceptions.ProtocolError:
            with suppress(h2.exceptions.ProtocolError):  # a head h2 refuses: say so
                self.h2.reset_stream(stream.id, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
            self._drop(stream)
            return
        if end:
            stream.finished = stream.ended = True

    def _window(self, stream: Stream) -> int:
        try:
            return self.h2.local_flow_control_window(stream.id)
        except h2.exceptions.ProtocolError:
            return 0

    def _transmit(self, stream: Stream, data: memoryview, end: bool, budget: int) -> memoryview:
        """Send the stream's held bytes, then ``data``, as far as the windows and ``budget``
        go (END_STREAM with the last of them when this is the end); what is left of ``data``."""
        frame = self.h2.max_outbound_frame_size
        try:
            while (stream.pending or data) and budget > 0:
                size = min(self.h2.local_flow_control_window(stream.id), frame, budget)
                if size <= 0:
                    break
                if stream.pending:
                    chunk: bytes | memoryview = bytes(stream.pending[:size])
                    del stream.pending[:size]
                    self._release(len(chunk))
                    last = False  # ended by _settle once the stream is drained
                else:
                    chunk, data = data[:size], data[size:]
                    last = end and not data
                self.h2.send_data(stream.id, chunk, end_stream=last)
                stream.ended = stream.ended or last
                stream.stalled_since = None
                budget -= len(chunk)
        except h2.exceptions.ProtocolError:  # the stream or connection closed meanwhile
            self._drop(stream)
            return _EMPTY
        return data

    def _room_for(self, stream: Stream) -> int:
        return min(STREAM_BUFFER_BYTES - len(stream.pending), self._max_buffer - self.buffered)

    def _hold(self, stream: Stream, data: memoryview) -> memoryview:
        """Buffer as much of ``data`` as the bounds allow; what is left."""
        room = min(self._room_for(stream), len(data))
        if room <= 0:
            return data
        stream.pending += data[:room]
        self.buffered += room
        return data[room:]

    def _release(self, size: int) -> None:
        if size:
            self.buffered -= size
            self._room.unpark_all()

    def _settle(self, stream: Stream) -> None:
        """Bring the connection's view of ``stream`` up to date after it changed."""
        if stream.gone:
            self._waiting.pop(stream.id, None)
        elif stream.pending:
            self._waiting[stream.id] = stream
            if stream.stalled_since is None:
                stream.stalled_since = trio.current_time()
                if self._read_scope is not None:
                    self._read_scope.deadline = min(
                        self._read_scope.deadline, stream.stalled_since + self._stall_timeout
                    )
        else:
            self._waiting.pop(stream.id, None)
            if stream.finished and not stream.ended and not stream.draining:
                try:
                    self.h2.end_stream(stream.id)
                    stream.ended = True
                except h2.exceptions.ProtocolError:
                    self._drop(stream)
        self._forget(stream)

    def _drop(self, stream: Stream) -> None:
        """The stream is reset: its held bytes go, its app hears http.disconnect."""
        self.buffered -= len(stream.pending)
        stream.lost()
        self._room.unpark_all()
        self._settle(stream)

    def _pump(self) -> None:
        """The windows opened: send the held bytes, a frame per stream in turn."""
        frame = self.h2.max_outbound_frame_size
        moved = True
        while self._waiting and moved:
            moved = False
            for stream in list(self._waiting.values()):
                before = len(stream.pending)
                self._transmit(stream, _EMPTY, stream.finished, frame)
                moved = moved or len(stream.pending) < before
                self._settle(stream)

    # -- stalls -----------------------------------------------------------------------------

    def _stall_deadline(self) -> float:
        since = [s.stalled_since for s in self._waiting.values() if s.stalled_since is not None]
        return min(since) + self._stall_timeout if since else math.inf

    async def _end_stalled(self) -> None:
        """Reset the streams whose bytes made no progress for ``write_timeout`` (or the whole
        connection, if its own window is the one that stayed shut)."""
        now = trio.current_time()
        expired = [
            s
            for s in self._waiting.values()
            if s.stalled_since is not None and now >= s.stalled_since + self._stall_timeout
        ]
        if not expired:
            return
        if self.h2.outbound_flow_control_window <= 0:
            self._close_stalled()
        for stream in [] if self._ending else expired:
            log.info(
                "h2.stream_stalled",
                stream_id=stream.id,
                buffered_bytes=len(stream.pending),
                write_timeout_seconds=self._stall_timeout,
                action="stream reset",
            )
            with suppress(h2.exceptions.ProtocolError):
                self.h2.reset_stream(stream.id, error_code=CANCEL)
            self._drop(stream)
        await self.flush(wait=False)

    def _close_stalled(self) -> None:
        log.info(
            "h2.connection_stalled",
            streams=len(self._waiting),
            buffered_bytes=self.buffered,
            write_timeout_seconds=self._stall_timeout,
            action="connection closed",
        )
        with suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection(error_code=CANCEL, additional_data=_STALL_REASON)
        self._ending = self.told_close = True

    # -- writing ----------------------------------------------------------------------------

    async def flush(self, *, wait: bool = True) -> None:
        """Write everything h2 has to send, under the connection's write lock. Whoever holds
        the lock writes until h2 has nothing left, so a caller that does not ``wait`` (the
        reader) leaves its frames to the writer already at work."""
        if self.io.broken:
            return
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            if not wait:
                return
            await self._lock.acquire()
        try:
            while data := self.h2.data_to_send():
                if not await self.io.write([data]):
                    self._write_failed()
                    return
        finally:
            self._lock.release()
