"""In-flight requests: one cancel scope each, with the reason it was cancelled.

The ``FlightTracker`` sees every request of the daemon (both eras), which is what shutdown
needs: refuse new work, wait for the running work up to a grace period, then cancel the rest
with a reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

import trio

from mcpd.protocol.jsonrpc import RequestId

T = TypeVar("T")

# Cancellation reasons, as they appear in logs and in the tool's trio.Cancelled.
CLIENT_DISCONNECTED: Final = "client disconnected"
CLIENT_CANCELLED: Final = "cancelled by the client"
SESSION_DELETED: Final = "session deleted by the client"
SESSION_EXPIRED: Final = "session expired"
SHUTDOWN: Final = "daemon shutting down"
TIMED_OUT: Final = "timed out"  # a tool's own timeout (not a flight cancellation)

# How long answering an abandoned flight may take (a write to its client).
ABANDON_GRACE: Final = 2.0
# Flights noted between two marks (see FlightTracker.mark); more are not named in a report.
MOVED_LIMIT: Final = 1024


class Flight:
    """One request's cancel scope; the first reason given wins.

    ``label`` says what runs in it once that is known (the tool's name), for reports such
    as ``loop.stalled`` and ``daemon.abandoned``.

    ``abandon``, set by whoever answers for the request, answers it with a terminal error
    and lets go of it without waiting for its task: the last resort of a shutdown, for work
    that does not stop when cancelled (a shielded ``finally`` that hangs, a sync tool that
    never checks). Once ``abandoned``, the task's own answer, if it ever comes, is dropped.
    """

    __slots__ = ("abandon", "abandoned", "label", "reason", "request_id", "scope")

    def __init__(self, request_id: RequestId, label: str | None = None) -> None:
        self.request_id = request_id
        self.label = label
        self.scope = trio.CancelScope()
        self.reason: str | None = None
        self.abandon: Callable[[], Awaitable[None]] | None = None
        self.abandoned = False

    def cancel(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.scope.cancel(reason=reason)

    @property
    def cancelled(self) -> bool:
        return self.reason is not None


class Owner(Protocol):
    """Where a request's task runs: its session's nursery, or the stateless requests'."""

    def start(self, flight: Flight, work: Callable[[], Awaitable[None]]) -> None: ...


class NurseryHost:
    """A long-lived nursery, run by the daemon, that other tasks are started into."""

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; tasks started into this host live in its nursery."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()


class StatelessRequests(NurseryHost):
    """The owner of modern (sessionless) requests' tasks: one nursery for the daemon."""

    def start(self, flight: Flight, work: Callable[[], Awaitable[None]]) -> None:
        if self._nursery is None:
            raise RuntimeError("stateless requests are not being served")
        self._nursery.start_soon(work)


class FlightTracker:
    """Every live request, so that shutdown can drain and then cancel them."""

    def __init__(self) -> None:
        self._flights: set[Flight] = set()
        self._idle = trio.Event()
        self._idle.set()
        self.accepting = True
        # Flights that came or went since mark(); None until someone marks (the loop watch).
        self._moved: deque[Flight] | None = None

    def add(self, flight: Flight) -> None:
        self._flights.add(flight)
        if self._idle.is_set():
            self._idle = trio.Event()
        if self._moved is not None:
            self._moved.append(flight)

    def discard(self, flight: Flight) -> None:
        self._flights.discard(flight)
        if not self._flights:
            self._idle.set()
        if self._moved is not None:
            self._moved.append(flight)

    def mark(self) -> None:
        """Start over noting the flights that come and go, for ``seen_since_mark``."""
        self._moved = deque(maxlen=MOVED_LIMIT)

    def seen_since_mark(self) -> list[Flight]:
        """Each flight in flight now or started or ended since ``mark()``, once: together,
        every request that ran at some moment since then (up to ``MOVED_LIMIT`` of those that
        came and went)."""
        seen = dict.fromkeys(self._flights)
        seen.update(dict.fromkeys(self._moved or ()))
        return list(seen)

    def __len__(self) -> int:
        return len(self._flights)

    async def wait_idle(self) -> None:
        """Return once no request is in flight."""
        while self._flights:
            await self._idle.wait()

    def cancel_all(self, reason: str) -> None:
        for flight in list(self._flights):
            flight.cancel(reason)

    async def abandon_all(self) -> list[Flight]:
        """Answer every flight still here with its terminal error and stop tracking it (see
        ``Flight.abandon``); the flights given up on."""
        stuck = list(self._flights)
        # Shielded: answering them is all that is left to do for their clients; bounded,
        # because a client that does not read must not hold the exit up.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + ABANDON_GRACE):
            async with trio.open_nursery() as nursery:
                for flight in stuck:
                    flight.abandoned = True
                    if flight.abandon is not None:
                        nursery.start_soon(flight.abandon)
        for flight in stuck:
            self.discard(flight)
        return stuck

    def describe(self) -> list[dict[str, object]]:
        """The flights in flight, for logs (see ``describe``)."""
        return describe(self._flights)


def describe(flights: Iterable[Flight]) -> list[dict[str, object]]:
    """Flights for a log event: request id, the tool (if a tool call), why it was cancelled."""
    return [
        {"request_id": f.request_id, "tool": f.label, "cancel_reason": f.reason} for f in flights
    ]


@dataclass(slots=True)
class Done(Generic[T]):
    """How a flight's work ended: a value, the exception it raised, or neither (cancelled).

    ``error`` may be any ``BaseException`` but a cancellation: whatever the work raised is
    handed back, never let loose in the nursery the work runs in (where it would end every
    other request of the session, or the daemon).
    """

    value: T | None = None
    error: BaseException | None = None
    completed: bool = False

    @property
    def outcome(self) -> Done[T] | None:
        """Itself if the work finished (with a value or an error), None if it was cancelled."""
        return self if self.completed or self.error is not None else None


async def fly(flight: Flight, work: Callable[[], Awaitable[T]], done: Done[T]) -> None:
    """Run ``work`` inside ``flight``'s cancel scope, recording how it ended in ``done``.

    Exceptions are handed back through ``done`` rather than raised, because the work may run
    in a session's nursery while the HTTP handler that answers for it waits elsewhere.
    """
    with flight.scope:
        try:
            done.value = await work()
            done.completed = True
        except trio.Cancelled:
            raise
        except BaseException as exc:
            # Cancellations inside a group still belong to their scopes; the rest is ours.
            cancelled, rest = _split_cancelled(exc)
            done.error = rest
            if cancelled is not None:
                raise cancelled from None


def _split_cancelled(
    error: BaseException,
) -> tuple[BaseException | None, BaseException | None]:
    if isinstance(error, BaseExceptionGroup):
        cancelled, rest = error.split(trio.Cancelled)
        if cancelled is not None:
            return cancelled, rest
    return None, error
