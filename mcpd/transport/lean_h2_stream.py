"""One HTTP/2 stream of the lean h2 path: the ASGI ``receive`` and ``send`` of one request,
run in the stream's own task (``mcpd.transport.lean_h2``).

What hypercorn does with a memory channel per stream, an event per buffer and a sender task,
this does with plain state on the stream and one parking lot: the connection's task appends
the request's body as h2 delivers it and wakes the app; the app's ``send`` hands the response
to the connection (``LeanH2.send_body``), which puts it into h2's frames and writes them.

ASGI as hypercorn serves it on h2: the same scope (``http_version`` "2", the host header made
from ``:authority``; no trailer, push or early-hint extensions: mcpd uses none), and
``http.disconnect`` exactly once (later ``receive`` calls wait forever) when the client resets
the stream, the connection is lost, or the response has completed. A stream's request body is
acknowledged (its flow-control window reopened) as the app reads it, so a client can never
make the server hold more of a body than one window. The response head is held until the
first body message, so a complete response is one write (HEADERS and DATA); a streaming one's
head goes out with its first chunk, or when the app waits in ``receive``.
"""

from __future__ import annotations

import enum
from time import time
from typing import TYPE_CHECKING, Any, Final

import trio
from hypercorn.utils import UnexpectedMessageError, build_and_validate_headers, suppress_body

if TYPE_CHECKING:
    from mcpd.transport.lean_h2 import LeanH2

Message = dict[str, Any]

_DISCONNECT: Final = {"type": "http.disconnect"}
# Connection-specific headers are forbidden in HTTP/2 (RFC 9113, 8.2.2); h2 refuses to send a
# head carrying one, so they are dropped (mcpd's own answers may say ``Connection: close``).
_HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class State(enum.Enum):
    REQUEST = enum.auto()  # no response started
    RESPONSE = enum.auto()  # response head held or sent
    CLOSED = enum.auto()  # response complete (as far as the app is concerned)


class Stream:
    """The ASGI receive/send pair of one HTTP/2 stream, and what the connection keeps of it."""

    # mcpd's send_final_body reads this: no hypercorn timer runs inside these sends.
    skips_final_shield: Final = True

    __slots__ = (
        "_lot",
        "_started_at",
        "_told_disconnect",
        "app_done",
        "body_done",
        "body_told",
        "chunks",
        "conn",
        "draining",
        "ended",
        "finished",
        "gone",
        "head",
        "id",
        "method",
        "pending",
        "scope",
        "stalled_since",
        "state",
        "status",
        "unacked",
    )

    def __init__(self, conn: LeanH2, stream_id: int, scope: Message) -> None:
        self.conn = conn
        self.id = stream_id
        self.scope = scope
        self.method: str = scope["method"]
        self.state = State.REQUEST
        self.status = 0
        self.head: list[tuple[bytes, bytes]] | None = None  # held until the first body
        # The request body as it arrived, not yet handed to the app, and its flow-controlled
        # size (acknowledged to the client once the app has it).
        self.chunks: list[bytes] = []
        self.unacked = 0
        self.body_done = False  # the client ended its side (END_STREAM)
        self.body_told = False  # the app has had the whole body (more_body False)
        # Response bytes waiting for the peer's flow-control windows (bounded by the
        # connection: ``lean_h2.LeanH2.send_body``), and since when none of them could move.
        self.pending = bytearray()
        self.stalled_since: float | None = None
        self.finished = False  # the app's last body is in (sent or pending)
        self.draining = False  # the app's last send waits to end the stream itself
        self.ended = False  # END_STREAM sent: nothing more goes out on this stream
        self.gone = False  # reset (by either side) or the connection is lost
        self.app_done = False
        self._told_disconnect = False
        self._lot = trio.lowlevel.ParkingLot()
        self._started_at = time()

    # -- what the connection tells the stream ----------------------------------------------

    def arrived(self, data: bytes, flow_controlled: int) -> None:
        self.chunks.append(data)
        self.unacked += flow_controlled
        self.wake()

    def wake(self) -> None:
        """Something changed that a ``receive`` waiting on this stream must see."""
        if self._lot:
            self._lot.unpark_all()

    def lost(self) -> None:
        """The stream was reset or its connection is gone: the app hears http.disconnect."""
        self.gone = True
        self.pending = bytearray()
        self.wake()

    @property
    def h2_done(self) -> bool:
        """Nothing more will go out on this stream."""
        return self.ended or self.gone

    # -- receive ----------------------------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self._told_disconnect:
                await trio.sleep_forever()
            if self.chunks or (self.body_done and not self.body_told):
                return await self._take_body()
            if self.gone or self.state is State.CLOSED:
                self._told_disconnect = True
                return _DISCONNECT
            await self._wait()

    async def _take_body(self) -> Message:
        chunks, self.chunks = self.chunks, []
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        acknowledged, self.unacked = self.unacked, 0
        more = not self.body_done
        self.body_told = not more
        if acknowledged > 0:
            await self.conn.acknowledge(self, acknowledged)
        return {"type": "http.request", "body": body, "more_body": more}

    async def _wait(self) -> None:
        if self.head is not None:
            # One scheduler pass first: a fast answer is written by now, head and body in one
            # write. Otherwise the app waits for the client while another task streams: its
            # client should see the head now.
            await trio.lowlevel.checkpoint()
            if self.head is not None and not self.gone:
                await self.conn.send_body(self, memoryview(b""), end=False)
            return
        await self._lot.park()

    # -- send -------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self.state is State.REQUEST:
            self._start(message)
        elif kind == "http.response.body" and self.state is State.RESPONSE:
            await self._body(message)
        else:
            raise UnexpectedMessageError(self.state, kind)

    def _start(self, message: Message) -> None:
        self.status = int(message["status"])
        headers = build_and_validate_headers(message.get("headers", ()))
        head = [(b":status", b"%d" % self.status)]
        head.extend(pair for pair in headers if pair[0].lower() not in _HOP_BY_HOP)
        head.extend(self.conn.response_headers())
        self.head = head
        self.state = State.RESPONSE

    async def _body(self, message: Message) -> None:
        body = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if suppress_body(self.method, self.status):
            body = b""
        await self.conn.send_body(self, memoryview(body), end=not more)
        if not more:
            # Complete only now: a receive told so earlier (by a wake for another reason)
            # would let the app cancel its own last send while the windows hold it back.
            self.state = State.CLOSED
            self.wake()  # a receive waiting for the client to leave: the response is done
            self.conn.log_access(self, time() - self._started_at)

    def respond_empty(self, status: int) -> None:
        """An empty response the app did not give (404 for a wrong host, 500 after a failure,
        501 for CONNECT), sent with the connection's next write."""
        self.status = status
        self.state = State.CLOSED
        self.head = [(b":status", b"%d" % status), (b"content-length", b"0")]
        self.head.extend(self.conn.response_headers())
        self.wake()
