"""One HTTP/1.1 request/response cycle of the lean path: the ASGI ``receive`` and ``send`` of
one request, run by the connection's own task (``mcpd.transport.lean_h11``).

What hypercorn does with a task, a memory channel and three locked, shielded writes per
request, this does in the caller's task: ``receive`` parses the body straight from the socket,
and ``send`` turns the response into h11 bytes and writes them. The head of a response is held
until its first body message, so a complete response is one ``sendmsg``; a streaming response's
head goes out with its first chunk, or when the app waits in ``receive`` (it may be waiting for
the client to leave while another task streams), whichever comes first.

ASGI as hypercorn serves it: ``http.disconnect`` exactly once (later ``receive`` calls wait
forever), when the client resets the connection, a write fails, or the response has completed;
``Expect: 100-continue`` answered when the app first reads the body. A complete request
followed by the client half-closing (``SHUT_WR``) is answered, not treated as a disconnect:
only a reset or a failed write is. Since TCP cannot tell that FIN from a full close, the app
gets ``HALF_CLOSED`` at the EOF (as on hypercorn's own path, ``mcpd.transport.hypercorn_h11``)
and probes the client with a write; a client that had closed answers with RST, which the
cycle polls for, and the app then gets ``http.disconnect``.

A streaming response to a GET may be detached (``DETACH`` in the scope's extensions): the app
takes a duplicate of the socket, mid-response, to carry it past this process (the 2024-11-05
SSE connections kept across a restart, ``mcpd.transport.http_sse``), and the connection then
closes its own descriptor without a word to the client.
"""

from __future__ import annotations

import enum
import os
from http import HTTPStatus
from time import time
from typing import TYPE_CHECKING, Any, Final

import h11
import trio
from hypercorn.utils import UnexpectedMessageError, build_and_validate_headers, suppress_body

from mcpd.transport.hypercorn_h11 import HALF_CLOSED
from mcpd.transport.lean_io import Gone

if TYPE_CHECKING:
    from mcpd.transport.lean_h11 import LeanConnection

Message = dict[str, Any]

# Standard reason phrases: hypercorn writes "HTTP/1.1 200 " with an empty one.
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}
_CLOSE: Final = (b"connection", b"close")
_DISCONNECT: Final = {"type": "http.disconnect"}
_HALF_CLOSED: Final = {"type": HALF_CLOSED}
# The client's states once its request is read (MUST_CLOSE: our response said close).
_READ: Final = frozenset({h11.DONE, h11.MUST_CLOSE})
# The scope extension offering ``Cycle.detach``.
DETACH: Final = "mcpd.detach"


class State(enum.Enum):
    REQUEST = enum.auto()  # no response started
    RESPONSE = enum.auto()  # response head sent or held
    CLOSED = enum.auto()  # response complete


def response(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))


class Cycle:
    """The ASGI receive/send pair of one request on a lean connection."""

    # mcpd's send_final_body reads this: no hypercorn idle timer runs inside our sends.
    skips_final_shield: Final = True

    __slots__ = (
        "_body_done",
        "_buffered",
        "_chunked",
        "_conn",
        "_disconnected",
        "_eof_told",
        "_head",
        "_method",
        "_peer_eof",
        "_started_at",
        "_status",
        "_wake",
        "_wants_close",
        "error_status",
        "scope",
        "state",
    )

    def __init__(self, conn: LeanConnection, scope: Message, *, wants_close: bool) -> None:
        self._conn = conn
        self.scope = scope
        self._method: str = scope["method"]
        self._wants_close = wants_close
        self.state = State.REQUEST
        self._status = 0
        self._head: h11.Response | None = None
        self._chunked = False  # the response body is chunked (h11's choice, made at the head)
        self._body_done = False
        self._disconnected = False
        self._peer_eof = False
        self._eof_told = False
        self._buffered = 0
        self._wake: trio.CancelScope | None = None
        self._started_at = time()
        # The status for a request h11 found malformed (e.g. EOF inside its body), if the
        # app leaves it unanswered: hypercorn's answer, 400.
        self.error_status: int | None = None

    # -- receive ----------------------------------------------------------------------------

    async def receive(self) -> Message:
        if self._disconnected:
            await trio.sleep_forever()
        if not self._body_done and self.state is not State.CLOSED and not self._gone():
            message = await self._read_body()
            if message is not None:
                return message
            # The request can never be complete (a reset, or EOF inside its body).
        else:
            await self._wait_disconnect()
            if self._peer_eof and not self._eof_told and self.state is not State.CLOSED:
                self._eof_told = True  # the app probes; the next receive() polls for a reset
                return _HALF_CLOSED
        self._disconnected = True
        return _DISCONNECT

    def _gone(self) -> bool:
        return self._conn.io.broken

    async def _read_body(self) -> Message | None:
        """The next part of the request body; None if the client went away instead."""
        h11conn = self._conn.h11
        if h11conn.they_are_waiting_for_100_continue:
            await self._conn.write_event(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        while True:
            try:
                event = h11conn.next_event()
            except h11.RemoteProtocolError as error:  # e.g. EOF before the declared length
                self.error_status = error.error_status_hint
                return None
            if type(event) is h11.Data:
                chunks.append(event.data)
            elif type(event) is h11.EndOfMessage:
                self._body_done = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            elif chunks:  # NEED_DATA with something to hand over
                return {"type": "http.request", "body": b"".join(chunks), "more_body": True}
            elif not await self._feed():
                return None

    async def _feed(self) -> bool:
        """Read more of the request into h11; False if the connection was reset."""
        try:
            data = await self._conn.io.receive()
        except Gone:
            return False
        self._conn.h11.receive_data(data)
        return True

    async def _wait_disconnect(self) -> None:
        """Return once the response is complete or the connection is gone, reading meanwhile
        (a reset shows up as a read error; bytes pipelined behind the request are kept)."""
        if self.state is not State.CLOSED:
            # One scheduler pass first: a fast answer (most are) is written by now, and the
            # wait below (a read that would block, two epoll_ctl calls) is not needed at all.
            await self._flush_head()
            await trio.lowlevel.checkpoint()
        while self.state is not State.CLOSED and not self._gone():
            await self._flush_head()
            with trio.CancelScope() as self._wake:
                if self._peer_eof and not self._eof_told:
                    return  # tell the app (HALF_CLOSED) before waiting on
                if self._peer_eof:
                    await self._conn.io.wait_reset()  # a closed peer resets after the probe
                    return
                if self._buffered > self._conn.max_buffered:
                    await trio.sleep_forever()  # nothing more to read; wait for the response
                await self._read_behind()
            self._wake = None

    async def _read_behind(self) -> None:
        try:
            data = await self._conn.io.receive()
        except Gone:
            return
        if not data:
            self._peer_eof = True  # half-closed after a complete request: still answer it
        else:
            self._buffered += len(data)
        self._conn.h11.receive_data(data)

    def _woken(self) -> None:
        if self._wake is not None:
            self._wake.cancel()

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
        self._status = int(message["status"])
        headers = build_and_validate_headers(message.get("headers", ()))
        headers.extend(self._conn.response_headers())
        streaming = not any(name.lower() == b"content-length" for name, _ in headers)
        # As h11 frames it: chunked unless the client speaks HTTP/1.0 (then close-delimited).
        self._chunked = streaming and self._conn.h11.their_http_version == b"1.1"
        if self._wants_close or self._conn.closing() or (streaming and self._method == "GET"):
            # A long-lived stream's connection is not worth reusing, and one ended at shutdown
            # must not look reusable (issue 12).
            headers.append(_CLOSE)
            self._conn.told_close = True
        self._head = response(self._status, headers)
        self.state = State.RESPONSE

    async def _body(self, message: Message) -> None:
        body = message.get("body", b"")
        more = bool(message.get("more_body", False))
        events: list[h11.Event] = []
        if body and not suppress_body(self._method, self._status):
            events.append(h11.Data(data=body if type(body) is bytes else bytes(body)))
        if not more:
            events.append(h11.EndOfMessage())
            self.state = State.CLOSED
        await self._conn.write_events(self, events)
        if not more:
            self._completed()

    async def _flush_head(self) -> None:
        if self._head is not None:
            await self._conn.write_events(self, [])

    def take_head(self) -> h11.Response | None:
        """The held response head, once (the connection writes it under its send lock)."""
        head, self._head = self._head, None
        return head

    def _completed(self) -> None:
        self._woken()
        self._conn.log_access(self, self._status, time() - self._started_at)

    def detach(self) -> int | None:
        """A duplicate of the connection's socket, mid-response, for the app to keep; None if
        the connection cannot be carried on from here by someone else who writes the rest of
        a chunked body: TLS, a head still held, a body not chunked, the request not read to
        its end, bytes read behind it, or the client gone or half-closed. Once detached,
        nothing more is written and the connection's own descriptor closes quietly."""
        conn = self._conn
        sock = conn.io.raw_socket
        if (
            sock is None
            or conn.io.broken
            or self.state is not State.RESPONSE
            or self._head is not None
            or not self._chunked
            or self._peer_eof
            or self._buffered
            or conn.h11.their_state not in _READ  # the request not read to its end
            or conn.h11.trailing_data[0]
        ):
            return None
        fd = os.dup(sock.fileno())
        conn.detached = True
        self.state = State.CLOSED  # nothing more goes out from here
        return fd

    def connection_lost(self) -> None:
        """A write failed: a receiver waiting for the client to leave learns it now."""
        self._woken()
