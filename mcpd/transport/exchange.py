"""The HTTP response to one POST, chosen lazily: JSON when the answer is all there is, SSE
as soon as anything must be sent before it.

Answering with an SSE stream costs about twice a plain JSON answer, and most requests stream
nothing, so the response type is decided by the first thing there is to send: the final
response(s) → ``application/json``; a notification, or a call still running after one
keep-alive interval → ``text/event-stream``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import trio

from mcpd.metrics import POST_SSE, Metrics
from mcpd.protocol import sse
from mcpd.protocol.jsonrpc import JsonObject, dumps
from mcpd.protocol.resume import RETRY_MS, EventLog, retry_field
from mcpd.transport.hypercorn_fixes import send_final_body

Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json"),)


async def send_response(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = JSON_HEADERS
) -> None:
    """A complete, non-streaming response (with Content-Length, so no chunked framing)."""
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send_final_body(send, body)


class StreamOwner(Protocol):
    """Keeps resumable streams (a session): gives each its event log and key."""

    def open_stream(self, exchange: Any) -> EventLog: ...


class Reply(Protocol):
    """Where a request's answer goes: an ``Exchange`` (a POST's response) or, on the
    2024-11-05 transport, the session's SSE connection.

    ``respond`` takes the answer already encoded: whoever answers encodes it first, so a
    value with no JSON form is caught before anything reaches the wire.
    """

    async def notify(self, message: JsonObject) -> None: ...

    async def respond(
        self, data: bytes, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None: ...

    async def skip(self) -> None: ...


class _FastLock:
    """A trio.Lock that skips the scheduler round trip when it is free.

    trio.Lock always yields on acquire; uncontended (the common case: one response and no
    notifications) taking it at once saves a pass through the scheduler per request.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


class Exchange:
    """Collects the JSON-RPC output of one POST and writes it as JSON or SSE.

    ``expected`` is the number of responses the POST owes (1, or the number of requests in a
    batch). Writes after the client went away are dropped: the disconnect watcher cancels the
    work, so nothing waits on a dead socket.
    """

    def __init__(
        self,
        send: Send,
        *,
        expected: int,
        batch: bool,
        headers: Headers,
        resumable_in: StreamOwner | None = None,
        prime: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self._send = send
        # Told when the response turns into a stream; whoever serves the POST counts it closed.
        self._metrics = metrics
        self._expected = expected
        self._batch = batch
        self._headers = headers
        self._responses: list[bytes] = []  # encoded, waiting for the JSON answer
        self._lock = _FastLock()
        self._status = 200
        # Resumable (legacy sessions): events get ids and are kept for a resume by GET.
        # Made when the response turns into a stream (most answers are plain JSON).
        self._owner = resumable_in
        self._log: EventLog | None = None
        self._prime = prime
        self._changed: trio.Event | None = None
        self.streaming = False
        self.finished = False
        self.broken = False
        self.attached = True  # a connection is there to write to
        self.generation = 0  # counts connection changes, so a stale watcher knows it is

    # -- resumption -----------------------------------------------------------------------

    @property
    def resumable(self) -> bool:
        """Whether a client that lost this stream can pick it up again by GET."""
        return self._log is not None

    async def wait_changed(self) -> None:
        """Wait until the stream is detached, resumed or finished."""
        if self._changed is None:
            self._changed = trio.Event()
        await self._changed.wait()

    def _signal(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def detach(self) -> None:
        """The connection is gone: keep logging events for a resume, write nothing."""
        self.broken = True
        self.attached = False
        self.generation += 1
        self._signal()

    async def resume(self, send: Send, after: int) -> bool:
        """Continue on a new connection (a GET with ``Last-Event-ID``): replay the events
        after ``after``, then go on live. False if those events are no longer all kept."""
        async with self._lock:
            missed = self._log.after(after) if self._log is not None else None
            if missed is None:
                return False
            self._send = send
            self.broken = False
            self.attached = True
            self.generation += 1
            await self._call(
                {"type": "http.response.start", "status": 200, "headers": list(sse.HEADERS)}
            )
            for framed in missed:
                await self._write(framed)
            if self.finished:
                await self._final(b"")
            self._signal()
            return True

    async def close_connection(self, retry_ms: int | None) -> None:
        """End the HTTP response now, leaving the stream open for a resume (2025-11-25)."""
        async with self._lock:
            if self._log is None or self.finished or not self.attached:
                return
            await self._ensure_stream()
            await self._write(retry_field(retry_ms if retry_ms is not None else RETRY_MS))
            await self._final(b"")
            self.detach()

    def _event(self, data: bytes) -> bytes:
        return self._log.record(data) if self._log is not None else sse.event(data)

    async def notify(self, message: JsonObject) -> None:
        """Send a notification that belongs to this POST (switches to SSE).

        Raises ``Unencodable`` (to the plugin code that sent it) before anything is written.
        """
        data = dumps(message)
        async with self._lock:
            if self.finished:
                return
            await self._ensure_stream()
            await self._write(self._event(data))

    async def respond(
        self, data: bytes, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        """Deliver one owed response (encoded); the last one completes the HTTP response.

        ``status`` and ``headers`` apply when the response is the whole (JSON) answer, e.g.
        400 for a 2026 error the spec gives an HTTP status, or 429 with ``Retry-After``; on a
        stream they cannot change anything.
        """
        async with self._lock:
            if self.finished:
                return
            self._status = status
            if headers:
                self._headers = [*self._headers, *headers]
            self._expected -= 1
            if self.streaming:
                await self._write(self._event(data))
            else:
                self._responses.append(data)
            if self._expected <= 0:
                await self._complete()

    async def skip(self) -> None:
        """One owed response will never come (its request was cancelled).

        A cancelled request is not answered (spec). HTTP still needs an ending: once nothing
        more is owed, an SSE stream is closed and an unstarted response becomes an empty
        event stream.
        """
        async with self._lock:
            if self.finished:
                return
            self._expected -= 1
            if self._expected > 0:
                return
            if self._responses:
                await self._complete()
                return
            await self._ensure_stream()
            self.finished = True
            await self._final(b"")
            self._signal()

    async def tick(self) -> None:
        """One keep-alive: a call silent for a keep-alive interval switches to SSE."""
        async with self._lock:
            if not self.finished:
                await self._ensure_stream()
                await self._write(sse.KEEPALIVE)

    async def _complete(self) -> None:
        self.finished = True
        self._signal()
        if self.streaming:
            await self._final(b"")
            return
        headers = [*JSON_HEADERS, *self._headers]
        if self._batch:
            body, status = b"[" + b",".join(self._responses) + b"]", 200
        else:
            body, status = self._responses[0], self._status
        if not self.broken:
            try:
                await send_response(self._send, status, body, headers)
            except Exception:  # the connection is gone; nobody is left to answer
                self.broken = True

    async def _ensure_stream(self) -> None:
        if self.streaming:
            return
        self.streaming = True
        if self._metrics is not None:
            self._metrics.stream_opened(POST_SSE)
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [*sse.HEADERS, *self._headers],
        }
        await self._call(start)
        if self._owner is not None:
            self._log = self._owner.open_stream(self)
            if self._prime:
                await self._write(self._log.priming())
        # Answers of a batch that came before the switch go first, as events.
        queued, self._responses = self._responses, []
        for data in queued:
            await self._write(self._event(data))

    @property
    def replay_bytes(self) -> int:
        """Bytes of events this stream keeps for a resume."""
        return 0 if self._log is None else self._log.bytes

    @property
    def stream_key(self) -> str | None:
        """The key a client resumes this stream by (None: not a resumable stream)."""
        return None if self._log is None else self._log.key

    async def _write(self, chunk: bytes) -> None:
        await self._call({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _final(self, chunk: bytes) -> None:
        if self.broken:
            return
        try:
            await send_final_body(self._send, chunk)
        except Exception:
            self.broken = True

    async def _call(self, message: dict[str, Any]) -> None:
        if self.broken:
            return
        try:
            await self._send(message)
        except Exception:  # hypercorn refuses sends on a closed stream; treat as gone
            self.broken = True
