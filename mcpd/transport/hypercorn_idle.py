"""hypercorn 0.18.0's keep-alive idle timeout, enforced by each connection's reader task.

Upstream runs the idle timer as a task of its own, restarted on every busy/idle switch: one
task spawn, one cancellation (an exception unwinding through its scopes) and several
scheduler passes per request, for a task that only sleeps. Measured on mcpd, that is about
45 µs of ~400 µs per request. Here the reader, which is parked in ``receive_some`` exactly
while the connection is idle, reads under a cancel scope whose deadline is the idle deadline:
moving a deadline costs nothing like a task.

Behaviour kept from upstream: an idle connection is closed ``keep_alive_timeout`` after its
last response, and at once when graceful shutdown starts (``context.terminated``); a busy
connection is never closed by the timer. With ``read_timeout`` configured, hypercorn's own
reader and timer run unchanged. Installed by ``hypercorn_fixes.apply`` (pinned to 0.18.0).

The reader also keeps a half-closed HTTP/1.1 request alive (``hypercorn_h11.answer_pending``):
after such an EOF it waits for ``on_closing`` instead of reporting the close.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import trio
from hypercorn.events import Closed, RawData
from hypercorn.trio import worker_context
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer

from mcpd.transport import hypercorn_h11

_UPSTREAM_READ_DATA = TCPServer._read_data


class IdleDeadline:
    """When the connection's reader gives up waiting: never while busy."""

    __slots__ = (
        "__weakref__",
        "_linger",
        "_timeout",
        "armed",
        "closing",
        "deadline",
        "reading",
        "scope",
    )

    def __init__(self, timeout: float, linger: float = 0.0) -> None:
        self._timeout = timeout
        # Shutting down, how long an idle connection still waits for a request its client
        # may already be sending (0: closed at once, as upstream does).
        self._linger = linger
        self.armed = False
        self.closing = False
        self.deadline = math.inf
        self.scope: trio.CancelScope | None = None
        # The reader's scope for the connection's life (see ``on_closing``).
        self.reading: trio.CancelScope | None = None

    def arm(self, *, now: bool = False) -> None:
        """The connection went idle (``now``: close it as soon as it is, after the linger)."""
        self.armed = True
        self._move(trio.current_time() + (self._linger if now else self._timeout))

    def disarm(self) -> None:
        self.armed = False
        self._move(math.inf)

    def terminate(self) -> None:
        if self.armed:
            self._move(min(self.deadline, trio.current_time() + self._linger))

    def expired(self) -> bool:
        return self.armed and trio.current_time() >= self.deadline

    def _move(self, deadline: float) -> None:
        self.deadline = deadline
        if self.scope is not None:
            self.scope.deadline = deadline


class TerminatedEvent(worker_context.EventWrapper):
    """hypercorn's event, which also closes idle connections at once when set."""

    def __init__(self) -> None:
        super().__init__()
        self.idle: weakref.WeakSet[IdleDeadline] = weakref.WeakSet()

    async def set(self) -> None:
        await super().set()
        for idle in list(self.idle):
            idle.terminate()


def install() -> None:
    """Route TCP connections' idle handling through their readers."""
    worker_context.WorkerContext.event_class = TerminatedEvent
    TCPServer._read_data = _read_data  # type: ignore[method-assign]


def on_closing(server: TCPServer) -> None:
    """The server is closing the connection (or a write failed): the reader must stop,
    wherever it waits (including after a half-close, see ``hypercorn_h11``).

    At graceful shutdown, h11 ends a finished request cycle with ``Closed`` instead of
    recycling the connection. A request the client already sent on it then leaves the
    reader parked inside ``protocol.handle``, waiting for a cycle that never comes, and the
    connection lingers until the whole ``graceful_timeout`` runs out. (hypercorn 0.18.0)
    """
    deadline: IdleDeadline | None = getattr(server, "_mcpd_idle", None)
    if deadline is None:
        return
    deadline.closing = True
    if deadline.reading is not None:
        deadline.reading.cancel(reason="connection closing")


def on_updated(server: TCPServer, idle: bool) -> bool:
    """Apply a busy/idle switch; False if this connection uses upstream's timer instead."""
    deadline: IdleDeadline | None = getattr(server, "_mcpd_idle", None)
    if deadline is None:
        return False
    if not idle:
        deadline.disarm()
    else:
        deadline.arm(now=server.context.terminated.is_set())
    return True


async def _read_data(self: TCPServer) -> None:
    terminated: Any = self.context.terminated
    if self.config.read_timeout is not None or not isinstance(terminated, TerminatedEvent):
        await _UPSTREAM_READ_DATA(self)
        return
    deadline = IdleDeadline(self.config.keep_alive_timeout)
    await self.idle_task.stop()  # run() started upstream's timer for the first idle period
    deadline.arm(now=terminated.is_set())
    self._mcpd_idle = deadline  # type: ignore[attr-defined]
    terminated.idle.add(deadline)
    try:
        # One scope for the connection's life (not one per read): on_closing cancels it,
        # wherever the reader waits.
        with trio.CancelScope() as reading:
            deadline.reading = reading
            # Bytes the lean HTTP/1.1 path read before handing the connection over (h2c, an
            # upgrade): fed here, where a busy/idle switch they cause is already handled.
            initial = getattr(self, "_mcpd_initial", None)
            if initial is not None:
                self._mcpd_initial = None  # type: ignore[attr-defined]
                await self.protocol.handle(initial)
            await _read_until_closed(self, deadline)
    finally:
        deadline.reading = None
        terminated.idle.discard(deadline)
    await self.protocol.handle(Closed())


async def _read_until_closed(self: TCPServer, deadline: IdleDeadline) -> None:
    while True:
        with trio.CancelScope(deadline=deadline.deadline) as scope:
            deadline.scope = scope
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            finally:
                deadline.scope = None
        if scope.cancelled_caught:
            if deadline.expired():
                # What upstream's idle task does, and as it does: shielded.
                with trio.CancelScope(shield=True):
                    await self._initiate_server_close()
                return
            continue  # the deadline moved while we waited; read on
        if deadline.closing:
            return  # the server is closing this connection: bytes still arriving are moot
        await self.protocol.handle(RawData(bytes(data)))
        if data == b"":
            if not deadline.closing and hypercorn_h11.answer_pending(self.protocol):
                # A half-closed client still reads its answer: wait for on_closing (the
                # response is done, or a write failed) or a reset, not for more data. The
                # app probes the client at once, so a closed one resets soon.
                await hypercorn_h11.tell_half_closed(self.protocol)
                await hypercorn_h11.wait_for_reset(self.stream)
            return
